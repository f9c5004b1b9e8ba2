#!/usr/bin/env python3
"""Writes the link order of meshproxy's functions: the ones a proxy runs, hottest first.

A release binary is ~37 MB of code, and the kernel maps it 64 KB around every page the process touches,
so a start that runs a few MB of functions scattered over the whole binary kept ~16 MB of it resident.
Linked in this order (lld's --symbol-ordering-file; the code is compiled into one section per function),
what a proxy runs sits together at the front. The profile: meshproxy under callgrind, started from a
static bootstrap and from an ADS bootstrap against meshd, proxying HTTP/1.1 and h2c requests to a local
upstream and answering the admin endpoints. A function missing from the list (new code) only lands
among the cold ones; regenerate after large changes (scripts/generate-order-file.sh).

Usage: order_file.py MESHPROXY MESHD OUTPUT
"""
import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

WAIT_SECONDS = 180  # meshproxy under callgrind starts ~50 times slower than natively


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"hello, world\n"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        self.rfile.read(length)
        self.do_GET()

    def log_message(self, *args):
        pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url, deadline):
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"gave up waiting for {url}")


def get(url, data=None):
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=60) as response:
        return response.read()


def listener(port, routes, resource_type=""):
    """The profile's listener, in YAML's flow style: an HCM with the router, its routes `routes` (a
    `route_config` or `rds` entry); `resource_type` makes it a resource of meshd's files."""
    typed = "'@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
    router = ("{ name: envoy.filters.http.router, typed_config: "
              "{ '@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }")
    hcm = f"{{ {typed}, stat_prefix: ingress_http, codec_type: AUTO, {routes}, http_filters: [{router}] }}"
    return (f"{{ {resource_type}name: listener_profile, "
            f"address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}, "
            f"filter_chains: [{{ filters: [{{ name: envoy.filters.network.http_connection_manager, "
            f"typed_config: {hcm} }}] }}] }}")


def virtual_hosts(route):
    return f"virtual_hosts: [{{ name: backend, domains: ['*'], routes: [{{ match: {{ prefix: / }}, route: {route} }}] }}]"


def assignment(cluster, port):
    """A ClusterLoadAssignment's fields, for one endpoint on 127.0.0.1."""
    return (f"cluster_name: {cluster}, endpoints: [{{ lb_endpoints: [{{ endpoint: "
            f"{{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]")


def static_bootstrap(listener_port, admin, upstream):
    routes = virtual_hosts("{ cluster: upstream, retry_policy: { retry_on: 5xx, num_retries: 2 } }")
    return f"""admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - {listener(listener_port, f"route_config: {{ name: local_route, {routes} }}")}
  clusters:
  - {{ name: upstream, connect_timeout: 5s, type: STATIC, load_assignment: {{ {assignment("upstream", upstream)} }} }}
"""


def ads_bootstrap(admin, xds):
    return f"""node: {{ id: profile-proxy, cluster: profile }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds_cluster }} }}]
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds_cluster
    connect_timeout: 1s
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment: {{ {assignment("xds_cluster", xds)} }}
"""


def ads_resources(directory, listener_port, upstream):
    """A listener with an RDS route and an EDS cluster: what a sidecar gets from meshd."""
    ads = "{ ads: {}, resource_api_version: V3 }"
    api = "'@type': type.googleapis.com/envoy.config"
    (directory / "resources.yaml").write_text(f"""resources:
- {listener(listener_port, f"rds: {{ route_config_name: local_route, config_source: {ads} }}", f"{api}.listener.v3.Listener, ")}
- {{ {api}.route.v3.RouteConfiguration, name: local_route, {virtual_hosts("{ cluster: upstream }")} }}
- {{ {api}.cluster.v3.Cluster, name: upstream, connect_timeout: 5s, type: EDS, eds_cluster_config: {{ eds_config: {ads} }} }}
- {{ {api}.endpoint.v3.ClusterLoadAssignment, {assignment("upstream", upstream)} }}
""")


def drive(listener, admin):
    """The traffic of the profile: what a serving proxy runs, and its admin pages."""
    base = f"http://127.0.0.1:{listener}"
    for _ in range(30):
        get(base + "/get")
    get(base + "/post", data=b"x" * 2048)
    subprocess.run(["curl", "-sS", "--no-progress-meter", "-o", "/dev/null", "--http2-prior-knowledge", "--parallel", "--parallel-immediate",
                    *[f"{base}/h2/{i}" for i in range(20)]], check=True, timeout=120, stdout=subprocess.DEVNULL)
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", "transfer-encoding: chunked", "--data-binary", "body",
                    base + "/chunked"], check=True, timeout=120, stdout=subprocess.DEVNULL)
    for path in ("/ready", "/server_info", "/stats", "/stats/prometheus", "/clusters", "/listeners",
                 "/config_dump", "/certs", "/logging"):
        get(f"http://127.0.0.1:{admin}{path}")


def profile(meshproxy, bootstrap_text, listener, admin, workdir, name):
    bootstrap = workdir / f"{name}.yaml"
    bootstrap.write_text(bootstrap_text)
    out = workdir / f"{name}.callgrind"
    proxy = subprocess.Popen(["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}",
                              meshproxy, "-c", str(bootstrap), "--concurrency", "1"],
                             stdout=subprocess.DEVNULL, stderr=open(workdir / f"{name}.log", "w"))
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        wait_for(f"http://127.0.0.1:{admin}/ready", deadline)
        wait_for(f"http://127.0.0.1:{listener}/get", deadline)
        drive(listener, admin)
    finally:
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(timeout=WAIT_SECONDS)
    return out


def self_costs(path, binary):
    """Instructions each function of `binary` ran itself, from a callgrind profile (names not demangled)."""
    names, costs = {}, {}
    objects, current_object, current, skip_next = {}, None, None, False
    pattern = re.compile(r"(ob|fl|fi|fe|fn|cob|cfi|cfl|cfn)=(?:\((\d+)\))?\s*(.*)")
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if skip_next:
            skip_next = False
            continue
        match = pattern.match(line)
        if match:
            kind, key, text = match.groups()
            # A name is given once, with its number, wherever it first appears (maybe in a call's line).
            if kind in ("ob", "cob") and key and text:
                objects[key] = text
            if kind == "ob":
                current_object = objects.get(key, text) if key else text
            elif kind == "fn":
                if key and text:
                    names[key] = text
                # callgrind tells a function's recursion levels apart as name'2, name'3...
                current = (current_object, re.sub(r"'\d+$", "", names.get(key, text) if key else text))
            elif kind == "cfn" and key and text:
                names[key] = text
            continue
        if line.startswith("calls="):
            skip_next = True  # the next line is the call's inclusive cost
            continue
        fields = line.split()
        if current and len(fields) >= 2 and fields[-1].isdigit() and current[0] and \
                os.path.realpath(current[0]) == binary:
            costs[current[1]] = costs.get(current[1], 0) + int(fields[-1])
    return costs


def main():
    meshproxy, meshd, output = (os.path.realpath(sys.argv[1]), os.path.realpath(sys.argv[2]), Path(sys.argv[3]))
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    upstream_port = upstream.server_address[1]
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        # valgrind 3.19 cannot read the DWARF 5 of Swift 6's debug info; the symbols are what it needs.
        subprocess.run(["objcopy", "--strip-debug", meshproxy, workdir / "meshproxy"], check=True)
        meshproxy = str(workdir / "meshproxy")
        profiles = []
        listener, admin = free_port(), free_port()
        profiles.append(profile(meshproxy, static_bootstrap(listener, admin, upstream_port), listener, admin,
                                workdir, "static"))
        resources = workdir / "resources"
        resources.mkdir()
        listener, admin, xds, meshd_admin = free_port(), free_port(), free_port(), free_port()
        ads_resources(resources, listener, upstream_port)
        control = subprocess.Popen([meshd, "--config-dir", str(resources), "--xds-address", f"127.0.0.1:{xds}",
                                    "--admin-address", f"127.0.0.1:{meshd_admin}", "--disable-ca"],
                                   stdout=subprocess.DEVNULL, stderr=open(workdir / "meshd.log", "w"))
        try:
            profiles.append(profile(meshproxy, ads_bootstrap(admin, xds), listener, admin, workdir, "ads"))
        finally:
            control.terminate()
            control.wait(timeout=30)
        total = {}
        for path in profiles:
            for name, cost in self_costs(path, meshproxy).items():
                total[name] = total.get(name, 0) + cost
    upstream.shutdown()
    # valgrind's own names ("(below main)") and bare addresses are not symbols the linker knows.
    symbols = [name for name in total if not re.search(r"\s|^\(|^0x[0-9a-f]+$", name)]
    ordered = sorted(symbols, key=lambda name: (-total[name], name))
    output.write_text("".join(name + "\n" for name in ordered))
    print(f"{output}: {len(ordered)} functions")


if __name__ == "__main__":
    main()
