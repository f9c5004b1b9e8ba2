#!/usr/bin/env python3
"""HTTP/1.1 and h2c proxy benchmark: meshproxy, Envoy 1.40, nginx and HAProxy (one worker each) against one nginx
upstream, plus the upstream directly. h2c is HTTP/2 downstream (h2load, prior knowledge), HTTP/1.1 upstream.
Load generator and upstream on core 0, proxy on core 1. Rounds are interleaved
(A B C ... A B C ...); each round starts every system afresh, so start-up time and idle RSS are sampled too.
Only 127.0.0.1 is used, every run is bounded in time."""
import argparse
import datetime
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_PORT = 18081
# h2c (prior knowledge) ports: nginx 1.22 and HAProxy need a listener of their own for it.
H2C_PORTS = {"direct": 18110, "meshproxy": 18100, "envoy": 18101, "nginx": 18112, "haproxy": 18113}
CLK_TCK = os.sysconf("SC_CLK_TCK")
LOAD_CORE, PROXY_CORE = "0", "1"
# Starts per proxy for the start-up figure.
STARTS = 5


def pinned(core, args):
    return ["taskset", "-c", core, *args]


def rss_kb(pid, field="VmRSS:"):
    """Resident memory from /proc; `RssAnon:` is the private part, without the binary's and libraries' pages."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def cpu_seconds(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except FileNotFoundError:
        return 0.0


def children(pid):
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]
    except OSError:
        return []


def http_ok(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class System:
    def __init__(self, name, port, args, workdir, cores=PROXY_CORE):
        self.name, self.port, self.args, self.workdir, self.cores = name, port, args, workdir, cores
        self.proc = None

    def start(self):
        started = time.monotonic()
        log = open(self.workdir / f"{self.name}.log", "ab")
        self.proc = subprocess.Popen(pinned(self.cores, self.args), stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = started + 15
        while time.monotonic() < deadline:
            if http_ok(self.port):
                return (time.monotonic() - started) * 1000
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.workdir / (self.name + '.log')}")
            time.sleep(0.002)
        raise TimeoutError(f"{self.name} did not serve within 15 s")

    def pids(self):
        if not self.proc:
            return []
        return [self.proc.pid, *children(self.proc.pid)]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=5)
        self.proc = None


def write_configs(workdir):
    mime = "/etc/nginx/mime.types"
    common = f"worker_processes 1; daemon off; error_log stderr error; events {{ worker_connections 8192; }}"
    (workdir / "upstream.conf").write_text(f"""{common} pid {workdir}/upstream.pid;
http {{ access_log off; keepalive_requests 1000000;
  client_body_temp_path {workdir}/ub; proxy_temp_path {workdir}/up; fastcgi_temp_path {workdir}/uf;
  uwsgi_temp_path {workdir}/uu; scgi_temp_path {workdir}/us;
  server {{ listen 127.0.0.1:{UPSTREAM_PORT}; location / {{ return 200 "hello, world\\n"; }} }}
  server {{ listen 127.0.0.1:{H2C_PORTS["direct"]} http2; location / {{ return 200 "hello, world\\n"; }} }} }}
""")
    (workdir / "nginx-proxy.conf").write_text(f"""{common} pid {workdir}/proxy.pid;
http {{ access_log off; keepalive_requests 1000000;
  client_body_temp_path {workdir}/pb; proxy_temp_path {workdir}/pp; fastcgi_temp_path {workdir}/pf;
  uwsgi_temp_path {workdir}/pu; scgi_temp_path {workdir}/ps;
  upstream backend {{ server 127.0.0.1:{UPSTREAM_PORT}; keepalive 128; keepalive_requests 1000000; }}
  server {{ listen 127.0.0.1:18102;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{H2C_PORTS["nginx"]} http2;
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    (workdir / "haproxy.cfg").write_text(f"""global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:18103
  default_backend be
frontend fe_h2c
  bind 127.0.0.1:{H2C_PORTS["haproxy"]} proto h2
  default_backend be
backend be
  server s1 127.0.0.1:{UPSTREAM_PORT}
""")
    # The same bootstrap as shared/reference/configs/envoy-perf.yaml, on this harness's ports.
    text = f"""admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: PORT_ADMIN }}
static_resources:
  listeners:
  - name: listener_perf
    address:
      socket_address: {{ address: 127.0.0.1, port_value: PORT_LISTENER }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          codec_type: AUTO
          route_config:
            name: local_route
            virtual_hosts:
            - name: backend
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: upstream_nginx }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream_nginx
    connect_timeout: 5s
    type: STATIC
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: upstream_nginx
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {UPSTREAM_PORT} }}
"""
    (workdir / "envoy.yaml").write_text(text.replace("PORT_ADMIN", "18201").replace("PORT_LISTENER", "18101"))
    (workdir / "meshproxy.yaml").write_text(text.replace("PORT_ADMIN", "18200").replace("PORT_LISTENER", "18100"))


def wrk(port, connections, seconds):
    out = subprocess.run(pinned(LOAD_CORE, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
                                            f"http://127.0.0.1:{port}/"]),
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for pct, value, unit in re.findall(r"\s+(50|99)%\s+([\d.]+)(us|ms|s)", out):
        lat[pct] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return {"rps": rps, "requests": total, "p50": lat.get("50"), "p99": lat.get("99"),
            "errors": int(errors.group(1)) if errors else 0}


def h2load(port, seconds):
    """h2load -c10 -m10 over h2c for `seconds`: requests/s and successful requests."""
    out = subprocess.run(pinned(LOAD_CORE, ["h2load", "-t1", "-c10", "-m10", "-D", str(seconds),
                                            f"http://127.0.0.1:{port}/"]),
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    rps = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if not rps or not done:
        return {"rps": None, "requests": 0, "errors": 0}
    return {"rps": float(rps.group(1)), "requests": int(done.group(2)),
            "errors": int(done.group(1)) - int(done.group(2))}


FIXED_RATE = 2000  # requests/s in all: well below every proxy's knee here


def fixed_rate(port, seconds):
    """`hey` at a fixed total rate (10 connections, each throttled): latency below the knee, p50 and p99 in ms."""
    out = subprocess.run(pinned(LOAD_CORE, ["hey", "-z", f"{seconds}s", "-c", "10", "-q", str(FIXED_RATE // 10),
                                            "-disable-compression", f"http://127.0.0.1:{port}/"]),
                         capture_output=True, text=True, timeout=seconds + 30).stdout
    lat = {pct: float(value) * 1000 for pct, value in re.findall(r"\s+(50|99)% in ([\d.]+) secs", out)}
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"p50": lat.get("50"), "p99": lat.get("99"), "rps": float(rps.group(1)) if rps else None}


IDLE_CONNECTIONS = 1000


def idle_connection_rss(port, pids):
    """RSS added by 1,000 keep-alive connections that made one request each and then sit idle, in MB."""
    before = sum(rss_kb(p) for p in pids)
    sockets = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            sockets.append(s)
        for s in sockets:
            s.recv(4096)
        time.sleep(0.5)
        return (sum(rss_kb(p) for p in pids) - before) / 1024
    finally:
        for s in sockets:
            s.close()


def startups(systems, repeats):
    """Start to first proxied request, each proxy started `repeats` times, interleaved, with no load running.
    Measured apart from the load rounds: a start right after another system's load run waited on that run's
    aftermath (every proxy but nginx took 2-4 times as long there, and the order of systems decided by how much)."""
    times = {system.name: [] for system in systems if system.args}
    for _ in range(repeats):
        for system in systems:
            if not system.args:
                continue
            times[system.name].append(system.start())
            system.stop()
            time.sleep(0.3)
    return times


def measure(system, seconds):
    result = {"start_after_load_ms": system.start()}
    time.sleep(0.3)
    pids = system.pids()
    result["idle_rss_mb"] = sum(rss_kb(p) for p in pids) / 1024
    result["idle_anon_mb"] = sum(rss_kb(p, "RssAnon:") for p in pids) / 1024
    result["idle_cx_rss_mb"] = idle_connection_rss(system.port, pids)
    result["fixed"] = fixed_rate(system.port, seconds)
    for connections in (50, 1):
        cpu_before = sum(cpu_seconds(p) for p in pids)
        run = wrk(system.port, connections, seconds)
        cpu_used = sum(cpu_seconds(p) for p in pids) - cpu_before
        result[f"c{connections}"] = run
        result[f"cpu_us_c{connections}"] = cpu_used * 1e6 / max(1, run["requests"])
    cpu_before = sum(cpu_seconds(p) for p in pids)
    result["h2c"] = h2load(H2C_PORTS[system.name], seconds)
    result["cpu_us_h2c"] = (sum(cpu_seconds(p) for p in pids) - cpu_before) * 1e6 / max(1, result["h2c"]["requests"])
    result["loaded_rss_mb"] = sum(rss_kb(p) for p in pids) / 1024
    system.stop()
    return result


def scaling(args, workdir, seconds, rounds):
    """wrk -c50 rps of meshproxy and Envoy with --concurrency 1 (on core 1) and 2 (on both cores, which the load
    generator and upstream share): rounds interleaved, medians."""
    runs = {}
    for _ in range(rounds):
        for name, binary, port, extra in (("meshproxy", args.meshproxy, 18100, []),
                                          ("envoy", args.envoy, 18101, ["--base-id", "78"])):
            for workers, cores in ((1, PROXY_CORE), (2, "0,1")):
                system = System(name, port, [binary, "-c", str(workdir / f"{name}.yaml"), "--concurrency",
                                             str(workers), "--log-level", "warning", *extra], workdir, cores)
                system.start()
                time.sleep(0.3)
                try:
                    runs.setdefault((name, workers), []).append(wrk(port, 50, seconds)["rps"])
                finally:
                    system.stop()
    return {key: median(values) for key, values in runs.items()}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(value, digits=0):
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def versions(args):
    def first_line(cmd):
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (out.stdout + out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), "?")
    return {
        "meshproxy": f"commit {commit}, release build",
        "envoy": first_line([args.envoy, "--version"]),
        "nginx": first_line(["nginx", "-v"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "h2load": first_line(["h2load", "--version"]),
        "hey": "hey " + (subprocess.run(["dpkg-query", "-W", "-f=${Version}", "hey"], capture_output=True,
                                        text=True).stdout.strip() or "?"),
        "machine": f"{os.cpu_count()} cores, {cpu}, Linux {platform.release()}",
    }


def plot(medians, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(medians)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [medians[n]["rps"] or 0 for n in names], color="#4878a8")
    left.set_title("wrk -t1 -c50: requests/s (higher is better)")
    right.bar(names, [medians[n]["p99"] or 0 for n in names], color="#c0504d")
    right.set_title("wrk -t1 -c50: p99 latency, ms (lower is better)")
    for axis in (left, right):
        axis.tick_params(axis="x", rotation=20)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--meshproxy", required=True)
    parser.add_argument("--envoy", required=True)
    parser.add_argument("--quick", action="store_true", help="one 3 s round; results go to a temp file")
    args = parser.parse_args()
    rounds, seconds = (1, 3) if args.quick else (3, 10)

    workdir = Path(tempfile.mkdtemp(prefix="swiftmesh-bench-"))
    write_configs(workdir)
    upstream = subprocess.Popen(pinned(LOAD_CORE, ["nginx", "-c", str(workdir / "upstream.conf"), "-p", str(workdir)]),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    systems = [
        System("direct", UPSTREAM_PORT, None, workdir),
        System("meshproxy", 18100, [args.meshproxy, "-c", str(workdir / "meshproxy.yaml"), "--concurrency", "1",
                                    "--log-level", "warning"], workdir),
        System("envoy", 18101, [args.envoy, "-c", str(workdir / "envoy.yaml"), "--concurrency", "1",
                                "--log-level", "warning", "--base-id", "77"], workdir),
        System("nginx", 18102, ["nginx", "-c", str(workdir / "nginx-proxy.conf"), "-p", str(workdir)], workdir),
        System("haproxy", 18103, ["haproxy", "-f", str(workdir / "haproxy.cfg")], workdir),
    ]
    samples = {s.name: [] for s in systems}
    try:
        deadline = time.monotonic() + 10
        while not http_ok(UPSTREAM_PORT):
            if time.monotonic() > deadline:
                raise TimeoutError("upstream nginx did not start")
            time.sleep(0.05)
        start_times = startups(systems, STARTS)
        for round_index in range(rounds):
            for system in systems:
                if system.name == "direct":
                    run50, run1 = wrk(UPSTREAM_PORT, 50, seconds), wrk(UPSTREAM_PORT, 1, seconds)
                    samples["direct"].append({"c50": run50, "c1": run1, "h2c": h2load(H2C_PORTS["direct"], seconds),
                                              "fixed": fixed_rate(UPSTREAM_PORT, seconds)})
                else:
                    samples[system.name].append(measure(system, seconds))
                print(f"round {round_index + 1}/{rounds}: {system.name} done", flush=True)
        scaled = scaling(args, workdir, seconds, rounds)
    finally:
        for system in systems:
            if system.args:
                system.stop()
        os.killpg(upstream.pid, 15)
        upstream.wait(timeout=10)

    medians = {}
    for name, runs in samples.items():
        medians[name] = {
            "rps": median([r["c50"]["rps"] for r in runs]),
            "rps_min": min(r["c50"]["rps"] for r in runs), "rps_max": max(r["c50"]["rps"] for r in runs),
            "p50": median([r["c50"]["p50"] for r in runs]),
            "p99": median([r["c50"]["p99"] for r in runs]),
            "rps_c1": median([r["c1"]["rps"] for r in runs]),
            "cpu_us": median([r.get("cpu_us_c50") for r in runs]),
            "idle_rss": median([r.get("idle_rss_mb") for r in runs]),
            "idle_anon": median([r.get("idle_anon_mb") for r in runs]),
            "loaded_rss": median([r.get("loaded_rss_mb") for r in runs]),
            "start_ms": median(start_times.get(name, [])),
            "start_after_load_ms": median([r.get("start_after_load_ms") for r in runs]),
            "errors": sum(r["c50"]["errors"] + r["c1"]["errors"] + r["h2c"]["errors"] for r in runs),
            "h2c": median([r["h2c"]["rps"] for r in runs]),
            "cpu_us_h2c": median([r.get("cpu_us_h2c") for r in runs]),
            "fixed_p50": median([r["fixed"]["p50"] for r in runs]),
            "fixed_p99": median([r["fixed"]["p99"] for r in runs]),
            "idle_cx_rss": median([r.get("idle_cx_rss_mb") for r in runs]),
        }

    info = versions(args)
    lines = [
        "| system | wrk -c50 rps (min–max) | p50 ms | p99 ms | wrk -c1 rps | proxy CPU µs/req | h2load -c10 -m10 rps (h2c) | h2c CPU µs/req | fixed 2,000 rps p50 ms | fixed p99 ms | idle RSS MB | of it private MB | RSS per 1,000 idle cx MB | RSS after load MB | start to first request ms | failed |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in medians.items():
        lines.append(f"| {name} | {fmt(m['rps'])} ({fmt(m['rps_min'])}–{fmt(m['rps_max'])}) | {fmt(m['p50'], 2)} | "
                     f"{fmt(m['p99'], 2)} | {fmt(m['rps_c1'])} | {fmt(m['cpu_us'], 1)} | {fmt(m['h2c'])} | "
                     f"{fmt(m['cpu_us_h2c'], 1)} | {fmt(m['fixed_p50'], 2)} | {fmt(m['fixed_p99'], 2)} | "
                     f"{fmt(m['idle_rss'], 1)} | {fmt(m['idle_anon'], 1)} | {fmt(m['idle_cx_rss'], 1)} | "
                     f"{fmt(m['loaded_rss'], 1)} | {fmt(m['start_ms'], 0)} | {m['errors']} |")
    mesh = medians["meshproxy"]
    ratios = []
    for other in ("envoy", "nginx", "haproxy", "direct"):
        o = medians[other]
        parts = [f"rps ×{mesh['rps'] / o['rps']:.2f}", f"p99 ×{mesh['p99'] / o['p99']:.2f}"]
        if o["cpu_us"]:
            parts.append(f"CPU/req ×{mesh['cpu_us'] / o['cpu_us']:.2f}")
        if o["h2c"] and mesh["h2c"]:
            parts.append(f"h2c rps ×{mesh['h2c'] / o['h2c']:.2f}")
        if o["fixed_p99"] and mesh["fixed_p99"]:
            parts.append(f"fixed-rate p99 ×{mesh['fixed_p99'] / o['fixed_p99']:.2f}")
        if o["idle_rss"]:
            parts.append(f"idle RSS ×{mesh['idle_rss'] / o['idle_rss']:.2f}")
        if o["idle_anon"] and mesh["idle_anon"]:
            parts.append(f"idle private RSS ×{mesh['idle_anon'] / o['idle_anon']:.2f}")
        if o["idle_cx_rss"] and mesh["idle_cx_rss"]:
            parts.append(f"RSS per idle cx ×{mesh['idle_cx_rss'] / o['idle_cx_rss']:.2f}")
        if o["start_ms"]:
            parts.append(f"start ×{mesh['start_ms'] / o['start_ms']:.2f}")
        if o.get("start_after_load_ms") and mesh["start_after_load_ms"]:
            parts.append(f"start after load {mesh['start_after_load_ms']:.0f} against {o['start_after_load_ms']:.0f} ms")
        ratios.append(f"- meshproxy / {other}: " + ", ".join(parts))
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    report = "\n".join([
        f"## HTTP/1.1 keep-alive and h2c, {stamp}",
        "",
        f"{rounds} interleaved rounds of `wrk -t1 -c50 -d{seconds}s` and `-c1`; medians. Upstream: nginx, one worker, "
        "`return 200 \"hello, world\\n\"`. Every proxy has one worker; load generator and upstream on core 0, proxy on "
        "core 1 (`taskset`). CPU per request is the proxy's utime+stime from /proc over the -c50 run (and over the "
        f"`h2load -t1 -c10 -m10 -D {seconds}` run for h2c: HTTP/2 downstream, HTTP/1.1 upstream). The fixed-rate "
        f"run is `hey -z {seconds}s -c 10 -q {FIXED_RATE // 10}` ({FIXED_RATE:,} requests/s in all, below every "
        "proxy's knee); RSS per 1,000 idle connections is the proxy's RSS growth with 1,000 keep-alive connections "
        "open after one request each. Start to first request: each proxy started "
        f"{STARTS} times, interleaved, before the load rounds and with nothing else running (median; the start "
        "before each system's load round, right after the previous system's, is in the ratio lines as \"start after "
        "load\").",
        "",
        *[f"- {k}: {v}" for k, v in info.items()],
        "",
        *lines,
        "",
        *ratios,
        "",
        "![rps and p99 per system](docs/bench-http1.png)",
        "",
        f"`--concurrency 2` against 1 (wrk -c50, medians of {rounds}): meshproxy {fmt(scaled[('meshproxy', 1)])} → "
        f"{fmt(scaled[('meshproxy', 2)])} rps (×{scaled[('meshproxy', 2)] / scaled[('meshproxy', 1)]:.2f}), Envoy "
        f"{fmt(scaled[('envoy', 1)])} → {fmt(scaled[('envoy', 2)])} rps (×{scaled[('envoy', 2)] / scaled[('envoy', 1)]:.2f}). "
        "With one worker the proxy has core 1 to itself; with two it runs on both cores, and core 0 is shared with wrk "
        "and the upstream.",
        "",
    ])
    if args.quick:
        print(report)
        assert all(m["rps"] and m["rps"] > 0 for m in medians.values()), "a system served nothing"
        return
    (ROOT / "docs").mkdir(exist_ok=True)
    plot(medians, ROOT / "docs/bench-http1.png")
    results = ROOT / "BENCHMARKS.md"
    text = results.read_text() if results.exists() else "# Benchmarks\n\n"
    header = text.split("<!-- results -->")[0]
    meshd_section = "\n<!-- meshd -->" + text.split("<!-- meshd -->", 1)[1] if "<!-- meshd -->" in text else ""
    results.write_text(header.rstrip() + "\n\n<!-- results -->\n\n" + report + meshd_section)
    print(report)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
