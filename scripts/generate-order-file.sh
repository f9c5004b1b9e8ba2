#!/usr/bin/env bash
# Regenerates scripts/meshproxy.order, the order release builds link meshproxy's functions in (what a proxy runs,
# hottest first; see scripts/order_file.py). Builds meshproxy and meshd in release mode, profiles meshproxy under
# callgrind (Debian: valgrind, curl), and rewrites the file. ~5 minutes after the build.
#   scripts/generate-order-file.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
source "$root/scripts/release-flags.sh"
command -v valgrind >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }
swift build -c release --product meshproxy $RELEASE_FLAGS
swift build -c release --product meshd $RELEASE_FLAGS
bin=$(swift build -c release --show-bin-path $RELEASE_FLAGS)
python3 scripts/order_file.py "$bin/meshproxy" "$bin/meshd" scripts/meshproxy.order
