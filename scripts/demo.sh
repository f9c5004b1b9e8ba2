#!/usr/bin/env bash
# The demos, set up from scratch (Debian packages and a venv with Envoy 1.40 are installed if missing).
#
#   scripts/demo.sh [--once]        meshd serving deploy/examples/meshd to a proxy (Envoy 1.40 over ADS) in front
#                                   of httpbin: proxy :15001, proxy admin :9901, meshd ADS :18000, meshd admin :18080
#   scripts/demo.sh seed [--once]   the seed walkthrough on meshproxy with deploy/seed/envoy.yaml:
#                                   proxy :15001, admin :15000
# Both start httpbin on 127.0.0.1:8000 and run until Ctrl-C; --once stops after the walkthrough.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
mode=mesh
once=false
for arg in "$@"; do
  case "$arg" in
    seed) mode=seed ;;
    --once) once=true ;;
    *) echo "usage: scripts/demo.sh [seed] [--once]" >&2; exit 2 ;;
  esac
done

scripts/setup-test-env.sh
swift build -c release --product meshproxy
swift build -c release --product meshd
bin="$(swift build -c release --show-bin-path)"

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
wait_for() { for _ in $(seq 150); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "timed out: $1" >&2; return 1; }
step() { printf '\n$ %s\n' "$*"; "$@"; echo; }

gunicorn -b 127.0.0.1:8000 -w 2 httpbin:app >/tmp/swiftmesh-demo-httpbin.log 2>&1 &
pids+=($!)
wait_for 127.0.0.1:8000/get

if [ "$mode" = seed ]; then
  "$bin/meshproxy" -c deploy/seed/envoy.yaml --concurrency 2 >/tmp/swiftmesh-demo-meshproxy.log 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1:15000/ready
  step curl -s -i http://127.0.0.1:15001/headers
  step curl -s 'http://127.0.0.1:15001/headers?show_env=1'
  step curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1:15001/status/500
  printf '\n$ curl -s 127.0.0.1:15000/stats | grep retry\n'
  curl -s 127.0.0.1:15000/stats | grep retry
  step curl -s 127.0.0.1:15000/clusters
  step curl -s 127.0.0.1:15000/listeners
  $once && exit 0
  echo "meshproxy is on :15001 (admin :15000), httpbin on :8000. Ctrl-C stops both."
else
  "$bin/meshd" --config-dir deploy/examples/meshd >/tmp/swiftmesh-demo-meshd.log 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1:18080/ready
  .venv-tests/bin/envoy -c deploy/examples/envoy-ads.yaml --concurrency 2 --log-level warning \
    >/tmp/swiftmesh-demo-envoy.log 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1:15001/get
  step curl -s -i http://127.0.0.1:15001/get
  step curl -s 127.0.0.1:18080/debug/syncz
  printf '\n$ curl -s 127.0.0.1:9901/config_dump | grep version_info\n'
  curl -s 127.0.0.1:9901/config_dump | grep '"version_info"' | sort -u
  $once && exit 0
  echo
  echo "Envoy on :15001 (admin :9901) runs from meshd (ADS :18000, /debug/syncz on :18080)."
  echo "Edit deploy/examples/meshd/*.yaml and watch it go live. Ctrl-C stops everything."
fi
wait
