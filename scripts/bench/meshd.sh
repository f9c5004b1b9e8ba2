#!/usr/bin/env bash
# meshd under N simulated proxies (meshd-load, Sources/meshd-load): file write -> new endpoints received by every
# proxy (p50/p99/max, with the default 100 ms debounce), and meshd's RSS per connected proxy, for N = 100 and
# 1,000, and with 100 connected a push of 10,000 clusters in one file. Each simulated proxy has a connection of
# its own, as Envoys do. Appends the results to BENCHMARKS.md.
#   scripts/bench/meshd.sh [--quick]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
source "$root/scripts/release-flags.sh"
# A thousand proxies are a thousand connections, for meshd and for the load tool.
ulimit -n 8192 2>/dev/null || true
swift build -c release --product meshd $RELEASE_FLAGS
swift build -c release --product meshd-load $RELEASE_FLAGS
bin="$(swift build -c release --show-bin-path $RELEASE_FLAGS)/meshd"
load="$(swift build -c release --show-bin-path $RELEASE_FLAGS)/meshd-load"
sizes=(100 1000)
pushes=5
bulk=10000
if [ "${1:-}" = "--quick" ]; then sizes=(20); pushes=2; bulk=200; fi

results=()
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT
for n in "${sizes[@]}"; do
  config=$(mktemp -d /tmp/swiftmesh-meshd-bench.XXXX)
  cp -r deploy/examples/meshd/. "$config/"
  log=$(mktemp /tmp/swiftmesh-meshd-bench-log.XXXX)
  taskset -c 1 "$bin" --config-dir "$config" --xds-address 127.0.0.1:18500 --admin-address 127.0.0.1:18580 \
    --log-level warning >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -fs 127.0.0.1:18580/ready >/dev/null 2>&1 && break; sleep 0.05; done
  line=$(taskset -c 0 "$load" --xds 127.0.0.1:18500 --meshd-pid "$pid" \
    --config-dir "$config" --proxies "$n" --pushes "$pushes" --bulk "$([ "$n" = "${sizes[0]}" ] && echo "$bulk" || echo 0)")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$config" "$log"
  echo "$line"
  results+=("$line")
done

if [ "${1:-}" = "--quick" ]; then exit 0; fi
python3 - "${results[@]}" <<'PY'
import json, sys, datetime, pathlib
rows = [json.loads(a) for a in sys.argv[1:]]
stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
lines = [f"## meshd push to N proxies, {stamp}", "",
         "Simulated proxies (meshd-load: grpc-swift, ADS state of the world, a connection each, subscribing and ACKing "
         "as Envoy does) on core 0, "
         "meshd on core 1; an endpoints file is rewritten and the time until each proxy has the new version is "
         "measured (default 100 ms debounce included). Each proxy's first request carries a node the size of Envoy "
         "1.40's (516 extensions, ~60 KB). RSS per proxy: meshd's RSS with N connected, after the pushes, less its RSS "
         "before, over N; right after connecting: the same taken as soon as every proxy had its first responses. meshd "
         "CPU per push: its CPU time over the pushes (and the ACKs), per push.", "",
         "| proxies | pushes | per-proxy p50 ms | per-proxy p99 ms | all received, p50 ms | all received, max ms | meshd CPU per push ms | meshd RSS MB | RSS per proxy KB | right after connecting KB |",
         "|---|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    lines.append(f"| {r['proxies']} | {r['pushes']} | {r['p50_ms']:.0f} | {r['p99_ms']:.0f} | {r['all_received_p50_ms']:.0f} "
                 f"| {r['max_ms']:.0f} | {r['meshd_cpu_per_push_ms']:.0f} | {r['meshd_rss_mb']:.1f} | {r['rss_per_proxy_kb']:.1f} | {r['connected_rss_per_proxy_kb']:.1f} |")
for r in rows:
    if r.get("bulk_resources"):
        lines += ["", f"A push of {r['bulk_resources']:,} STATIC clusters in one JSON file to {r['proxies']} connected "
                  f"proxies: first proxy has them all after {r['bulk_first_ms']:.0f} ms, every proxy after "
                  f"{r['bulk_all_ms']:.0f} ms; meshd used {r['bulk_meshd_cpu_s']:.1f} s of CPU for it, and its RSS was then "
                  f"{r['bulk_meshd_rss_mb']:.1f} MB."]
path = pathlib.Path("BENCHMARKS.md")
text = path.read_text()
head, marker, rest = text.partition("<!-- meshd -->")
path.write_text(head.rstrip() + "\n\n<!-- meshd -->\n\n" + "\n".join(lines) + "\n")
print("\n".join(lines))
PY
