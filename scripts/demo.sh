#!/usr/bin/env bash
# Sets up and runs the seed demo: httpbin on 127.0.0.1:8000 and meshproxy with deploy/seed/envoy.yaml
# (listener :15001, admin :15000), then walks through the seed's requests. Runs until Ctrl-C;
# `--once` stops after the walkthrough.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
once=false
[ "${1:-}" = "--once" ] && once=true

scripts/setup-test-env.sh
swift build -c release --product meshproxy
bin="$(swift build -c release --show-bin-path)/meshproxy"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

gunicorn -b 127.0.0.1:8000 -w 2 httpbin:app >/tmp/swiftmesh-demo-httpbin.log 2>&1 &
pids+=($!)
"$bin" -c deploy/seed/envoy.yaml --concurrency 2 >/tmp/swiftmesh-demo-meshproxy.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -fs 127.0.0.1:15000/ready >/dev/null 2>&1 && curl -fs 127.0.0.1:8000/get >/dev/null 2>&1 && break
  sleep 0.1
done

step() { printf '\n$ %s\n' "$*"; "$@"; echo; }
step curl -s -i http://127.0.0.1:15001/headers
step curl -s 'http://127.0.0.1:15001/headers?show_env=1'
step curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:15001/status/500
printf '\n$ curl -s 127.0.0.1:15000/stats | grep retry\n'
curl -s 127.0.0.1:15000/stats | grep retry
step curl -s 127.0.0.1:15000/clusters
step curl -s 127.0.0.1:15000/listeners

if $once; then exit 0; fi
echo
echo "meshproxy is on :15001 (admin :15000), httpbin on :8000. Ctrl-C stops both."
wait
