#!/usr/bin/env bash
# The whole test suite: unit tests (swift test), then integration tests (pytest) that start
# meshproxy, httpbin and a real Envoy 1.40 on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-test-env.sh
swift build
swift test
export MESHPROXY_BIN="$root/.build/debug/meshproxy"
export ENVOY_BIN="$root/.venv-tests/bin/envoy"
exec .venv-tests/bin/python -m pytest -q -p no:cacheprovider Tests/integration
