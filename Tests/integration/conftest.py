"""Fixtures that start real processes on 127.0.0.1: httpbin under gunicorn, meshproxy, Envoy 1.40.

Every wait is bounded and every process is stopped by its pid at teardown.
"""
import http.client
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MESHPROXY = os.environ.get("MESHPROXY_BIN", str(ROOT / ".build/debug/meshproxy"))
ENVOY = os.environ.get("ENVOY_BIN", str(ROOT / ".venv-tests/bin/envoy"))


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, never one this run handed out before: two servers of one test must not be
    given the same port between its release here and their binding it."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def http_request(port, method, path, body=None, headers=None, timeout=10.0):
    """One request on a new connection: (status, headers as a list of (name, value), body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        conn.close()


def get(port, path, **kwargs):
    return http_request(port, "GET", path, **kwargs)


def post(port, path, **kwargs):
    return http_request(port, "POST", path, **kwargs)


class Process:
    """A child process with its log file, stopped by pid."""

    def __init__(self, args, log_path):
        self.args = args
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return Path(self.log_path).read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout=10.0) -> int:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def workdir():
    with tempfile.TemporaryDirectory(prefix="swiftmesh-it-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def httpbin(workdir):
    """httpbin on a free port; sync workers close every connection, like the seed walkthrough."""
    port = free_port()
    process = Process(["gunicorn", "-b", f"127.0.0.1:{port}", "-w", "2", "httpbin:app"], workdir / "httpbin.log")
    try:
        wait_for_port(port)
        yield port
    finally:
        process.stop()


def seed_config(upstream_port, listener_port, admin_port, route_extra="", typed_router=True, upstream_host="127.0.0.1"):
    """The seed walkthrough's bootstrap with ports of our choosing."""
    router = (
        "- name: envoy.filters.http.router\n"
        "            typed_config:\n"
        '              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router'
        if typed_router
        else "- name: envoy.filters.http.router"
    )
    return f"""
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }}
static_resources:
  listeners:
  - name: listener_0
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listener_port} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          route_config:
            name: local_route
            virtual_hosts:
            - name: local_service
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route:
                  cluster: httpbin_service
                  auto_host_rewrite: true
{route_extra}
          http_filters:
          {router}
  clusters:
  - name: httpbin_service
    connect_timeout: 5s
    type: LOGICAL_DNS
    dns_lookup_family: V4_ONLY
    lb_policy: ROUND_ROBIN
    load_assignment:
      cluster_name: httpbin_service
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {upstream_host}, port_value: {upstream_port} }}
"""


class Proxy:
    """A running proxy (meshproxy or Envoy) with its listener and admin ports."""

    def __init__(self, process, listener_port, admin_port, config_path):
        self.process = process
        self.port = listener_port
        self.admin = admin_port
        self.config_path = config_path

    def get(self, path, **kwargs):
        return get(self.port, path, **kwargs)

    def admin_get(self, path):
        status, _, body = get(self.admin, path)
        return status, body.decode()

    def admin_post(self, path):
        status, _, body = post(self.admin, path)
        return status, body.decode()

    def stats(self, filter_text=None) -> dict:
        _, text = self.admin_get("/stats")
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if filter_text is None or filter_text in name:
                out[name] = value
        return out


def wait_ready(admin_port, process, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.proc.returncode}:\n{process.output()}")
        try:
            status, _, _ = get(admin_port, "/ready", timeout=1.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"not ready after {timeout}s:\n{process.output()}")


def start_proxy(binary, config_text, workdir, name, listener_port, admin_port, extra_args=()):
    config_path = workdir / f"{name}.yaml"
    config_path.write_text(config_text)
    args = [binary, "-c", str(config_path), "--concurrency", "1", *extra_args]
    if binary == ENVOY:
        args += ["--base-id", str(free_port()), "--log-level", "warning"]
    process = Process(args, workdir / f"{name}.log")
    wait_ready(admin_port, process)
    return Proxy(process, listener_port, admin_port, config_path)


@pytest.fixture
def raw():
    """A RawUpstream for one test."""
    from rawupstream import RawUpstream
    upstream = RawUpstream()
    yield upstream
    upstream.close()


@pytest.fixture
def launch(workdir):
    """launch(binary, make_config, name) starts a proxy on fresh ports; stopped after the test."""
    started = []

    def _launch(binary, make_config, name, extra_args=()):
        listener_port, admin_port = free_port(), free_port()
        proxy = start_proxy(binary, make_config(listener_port, admin_port), workdir, name, listener_port, admin_port,
                            extra_args)
        started.append(proxy)
        return proxy

    yield _launch
    for proxy in started:
        proxy.process.stop()
    for proxy in started:
        # NIO refuses tasks for an event loop that shut down, and says so; a future NIO version crashes there.
        assert "Cannot schedule tasks on an EventLoop" not in proxy.process.output(), proxy.process.log_path


def static_cluster(name, port, extra=""):
    """A STATIC cluster with one endpoint on 127.0.0.1; `extra` is more of its YAML, indented by four."""
    return (f"  - name: {name}\n    type: STATIC\n{extra}"
            f"    load_assignment: {{ cluster_name: {name}, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: "
            f"{{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}] }}\n")


HCM_TYPE = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def protocol_options(common, protocol="http_protocol_options"):
    """A cluster's typed HttpProtocolOptions (indented for static_cluster's `extra`): `common` is the
    common_http_protocol_options text, `protocol` the explicit_http_config choice."""
    return ("    typed_extension_protocol_options:\n"
            "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
            '        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n'
            f"        common_http_protocol_options: {common}\n"
            f"        explicit_http_config: {{ {protocol}: {{}} }}\n")


# An HCM access log (indented for http_bootstrap's `hcm_extra`) of code, flags and details per request.
FLAGS_ACCESS_LOG = """          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {path}
              log_format: {{ text_format_source: {{ inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n" }} }}
"""


def http_bootstrap(listener, admin, routes, clusters, hcm_extra="", stat_prefix="ingress_http"):
    """A bootstrap with the admin port and one listener whose HTTP connection manager has the typed router,
    `hcm_extra` (HCM fields, indented by ten), one virtual host for every domain with `routes` (route list
    entries, indented by twelve; they are moved under `routes:`) and `clusters` (static_cluster texts)."""
    routes = "".join("  " + line for line in routes.splitlines(True))
    return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: {stat_prefix}
{hcm_extra}          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
          route_config:
            name: r
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
{routes}  clusters:
{"".join(clusters)}"""


def ads_bootstrap(xds_port, admin, node_id, cluster, metadata="", xds_transport_socket=""):
    """A bootstrap for a proxy driven by meshd over ADS: node (with `metadata`, a YAML flow mapping), the xDS
    cluster (HTTP/2, with `xds_transport_socket` YAML indented by four when the channel is TLS) and admin."""
    meta = f", metadata: {metadata}" if metadata else ""
    return f"""
node: {{ id: {node_id}, cluster: {cluster}{meta} }}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{{ envoy_grpc: {{ cluster_name: xds_cluster }} }}]
  lds_config: {{ ads: {{}}, resource_api_version: V3 }}
  cds_config: {{ ads: {{}}, resource_api_version: V3 }}
static_resources:
  clusters:
  - name: xds_cluster
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {{ http2_protocol_options: {{}} }}
    load_assignment: {{ cluster_name: xds_cluster, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {xds_port} }} }} }} }}] }}] }}
{xds_transport_socket}admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
"""
