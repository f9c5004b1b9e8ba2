#!/usr/bin/env bash
# The whole test suite: unit tests (swift test), then integration tests (pytest) that start
# meshproxy, httpbin and a real Envoy 1.40 on 127.0.0.1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup-test-env.sh
# One build for everything (executables and test bundles); `swift test` alone would not build the
# executables the integration tests start, and building them separately compiles twice.
swift build --build-tests
swift test --skip-build
export MESHPROXY_BIN="$root/.build/debug/meshproxy"
export ENVOY_BIN="$root/.venv-tests/bin/envoy"
exec .venv-tests/bin/python -m pytest -q -p no:cacheprovider Tests/integration
