"""Active health checks (http_health_check, tcp_health_check, grpc_health_check) through Envoy 1.40 and meshproxy alike: a host
whose /healthz fails leaves load balancing at once (`/failed_active_hc` in /clusters, the health_check stats, the
cluster's membership_healthy), comes back after healthy_threshold passing checks, and a host that stops listening
fails by timeout or refused connection after unhealthy_threshold checks."""
import time

import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap
from loopback_servers import LoopbackServer
from scripted_upstream import ScriptedUpstream

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


class Backend(ScriptedUpstream):
    """An upstream that answers its name, and /healthz with 200 or 503 as `healthy` says."""

    def __init__(self, name):
        self.healthy = True
        super().__init__(lambda path: (200, [], b"ok") if path == "/healthz" and self.healthy
                         else (503, [], b"sick") if path == "/healthz" else (200, [], name.encode()))


def two_host_config(a, b, checker, cluster_extra=""):
    cluster = f"""  - name: app
    type: STATIC
    connect_timeout: 0.5s
{cluster_extra}    health_checks:
    - timeout: 0.5s
      interval: 0.2s
      no_traffic_interval: 0.2s
      unhealthy_threshold: 2
      healthy_threshold: 2
{checker}    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {a.port} }} }} }}
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {b.port} }} }} }}
"""
    return lambda listener, admin: http_bootstrap(listener, admin, "            - match: { prefix: / }\n              route: { cluster: app }\n",
                                                  [cluster])


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def flags(proxy, port):
    _, text = proxy.admin_get("/clusters")
    return next(line.rsplit("::", 1)[1] for line in text.splitlines()
                if line.startswith(f"app::127.0.0.1:{port}::health_flags::"))


def answers(proxy, count=12):
    return {proxy.get("/")[2].decode() for _ in range(count)}


@pytest.mark.parametrize("binary,name", PROXIES)
def test_http_health_checks_take_a_failing_host_out_and_bring_it_back(launch, binary, name):
    a, b = Backend("a"), Backend("b")
    try:
        proxy = launch(binary, two_host_config(a, b, "      http_health_check: { path: /healthz }\n"), f"hc-http-{name}")
        wait_for(lambda: flags(proxy, a.port) == "healthy" and flags(proxy, b.port) == "healthy", what="both healthy")
        assert answers(proxy) == {"a", "b"}
        a.healthy = False
        # An unexpected status fails the host at its first failing check.
        wait_for(lambda: flags(proxy, a.port) == "/failed_active_hc", what="a failed")
        # Workers pick up the new host set a moment after /clusters shows it.
        wait_for(lambda: answers(proxy) == {"b"}, what="only b answers")
        stats = proxy.stats("cluster.app.")
        assert stats["cluster.app.membership_healthy"] == "1"
        assert stats["cluster.app.health_check.healthy"] == "1"
        assert int(stats["cluster.app.health_check.failure"]) >= 1
        assert int(stats["cluster.app.health_check.attempt"]) > int(stats["cluster.app.health_check.failure"])
        a.healthy = True
        wait_for(lambda: flags(proxy, a.port) == "healthy", what="a back")
        wait_for(lambda: answers(proxy) == {"a", "b"}, what="a answers again")
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_expected_statuses_and_the_panic_threshold(launch, binary, name):
    """expected_statuses makes a 503 healthy for one cluster; with healthy_panic_threshold at 60 %, one host
    of two failing puts the cluster in panic, where every host serves (lb_healthy_panic)."""
    a, b = Backend("a"), Backend("b")
    try:
        a.healthy = False
        accepting = launch(binary, two_host_config(
            a, b, "      http_health_check: { path: /healthz, expected_statuses: [{ start: 200, end: 300 }, { start: 503, end: 504 }] }\n"),
            f"hc-expected-{name}")
        wait_for(lambda: flags(accepting, a.port) == "healthy" and flags(accepting, b.port) == "healthy", what="both healthy")
        panicking = launch(binary, two_host_config(
            a, b, "      http_health_check: { path: /healthz }\n",
            cluster_extra="    common_lb_config: { healthy_panic_threshold: { value: 60 } }\n"), f"hc-panic-{name}")
        wait_for(lambda: flags(panicking, a.port) == "/failed_active_hc", what="a failed")
        wait_for(lambda: panicking.stats("cluster.app.membership_healthy")["cluster.app.membership_healthy"] == "1",
                 what="one healthy host")
        assert answers(panicking, 20) == {"a", "b"}
        assert int(panicking.stats("cluster.app.lb_healthy_panic")["cluster.app.lb_healthy_panic"]) >= 20
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_tcp_health_checks_notice_a_host_that_stops_listening(launch, binary, name):
    a, b = Backend("a"), Backend("b")
    try:
        proxy = launch(binary, two_host_config(a, b, "      tcp_health_check: {}\n"), f"hc-tcp-{name}")
        wait_for(lambda: flags(proxy, a.port) == "healthy" and flags(proxy, b.port) == "healthy", what="both healthy")
        a.close()
        stopped = time.monotonic()
        wait_for(lambda: flags(proxy, a.port) == "/failed_active_hc", what="a failed")
        # Refused at once: out after unhealthy_threshold (2) checks 0.2 s apart, give or take an interval.
        assert time.monotonic() - stopped < 2 * 0.2 + 0.5
        wait_for(lambda: answers(proxy) == {"b"}, what="only b answers")
        stats = proxy.stats("cluster.app.health_check.")
        assert int(stats["cluster.app.health_check.network_failure"]) >= 2
    finally:
        b.close()


class GRPCHealthBackend:
    """A gRPC server (Python grpcio) with the standard health service; `serving` sets the service's status."""

    def __init__(self):
        from concurrent import futures

        import grpc
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
        self.health_pb2 = health_pb2
        self.servicer = health.HealthServicer()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        health_pb2_grpc.add_HealthServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.serving(True)

    def serving(self, serving):
        status = self.health_pb2.HealthCheckResponse.SERVING if serving else self.health_pb2.HealthCheckResponse.NOT_SERVING
        self.servicer.set("checkout", status)

    def close(self):
        self.server.stop(0)


@pytest.mark.parametrize("binary,name", PROXIES)
def test_grpc_health_checks_follow_the_serving_status(binary, name, launch):
    a, b = GRPCHealthBackend(), GRPCHealthBackend()
    b.serving(False)
    checker = """      grpc_health_check: { service_name: checkout }
"""
    make = two_host_config(a, b, checker)

    def with_http2(listener, admin):
        # gRPC health checks speak HTTP/2, so the cluster must (Envoy refuses the check otherwise).
        return make(listener, admin).replace(
            "    connect_timeout: 0.5s\n",
            "    connect_timeout: 0.5s\n    typed_extension_protocol_options:\n"
            "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
            '        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n'
            "        explicit_http_config: { http2_protocol_options: {} }\n", 1)
    try:
        proxy = launch(binary, with_http2, f"grpc-hc-{name}")
        wait_for(lambda: flags(proxy, a.port) == "healthy" and flags(proxy, b.port) == "/failed_active_hc",
                 what="SERVING healthy, NOT_SERVING failed")
        stats = proxy.stats("cluster.app.health_check.")
        assert int(stats["cluster.app.health_check.success"]) > 0 and int(stats["cluster.app.health_check.failure"]) > 0
        a.serving(False)
        b.serving(True)
        wait_for(lambda: flags(proxy, a.port) == "/failed_active_hc" and flags(proxy, b.port) == "healthy",
                 what="the statuses swapped")
    finally:
        a.close()
        b.close()


class LineServer(LoopbackServer):
    """Answers whatever it is sent with `reply` (a TCP health check's peer), remembering what came."""

    def __init__(self, reply):
        self.reply = reply
        self.received = []
        super().__init__()

    def handle(self, conn):
        with conn:
            conn.settimeout(2)
            try:
                data = conn.recv(1024)
            except OSError:
                return
            self.received.append(data)
            if data:
                conn.sendall(self.reply)
                time.sleep(0.3)


@pytest.mark.parametrize("binary,name", PROXIES)
def test_tcp_health_checks_send_a_payload_and_look_for_the_answer(launch, binary, name):
    # PING in hex, as Envoy takes `text`; the answer must hold PONG and then a line end, gaps allowed.
    pong, wrong = LineServer(b"+PONG\r\n"), LineServer(b"-ERR unknown\r\n")
    checker = ("      tcp_health_check:\n        send: { text: 50494E470D0A }\n"
               "        receive: [{ text: 504F4E47 }, { text: 0D0A }]\n")
    try:
        proxy = launch(binary, two_host_config(pong, wrong, checker), f"hc-tcp-payload-{name}")
        wait_for(lambda: flags(proxy, pong.port) == "healthy", what="the host that answers PONG is healthy")
        wait_for(lambda: int(proxy.stats("cluster.app.")["cluster.app.health_check.failure"]) >= 2,
                 what="the other host's checks fail")
        assert flags(proxy, wrong.port) == "/failed_active_hc"
        assert pong.received[0] == b"PING\r\n" and wrong.received[0] == b"PING\r\n"
    finally:
        pong.close()
        wrong.close()


class HeaderRecorder(LoopbackServer):
    """Answers every request 200 and remembers its header lines."""

    def __init__(self):
        self.heads = []
        super().__init__()

    def handle(self, conn):
        with conn:
            read = self.read_head(conn)
            if read is None:
                return
            self.heads.append(read[0].decode().lower().split("\r\n")[1:])
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")


@pytest.mark.parametrize("binary,name", PROXIES)
def test_http_health_checks_add_and_remove_request_headers(launch, binary, name):
    a, b = HeaderRecorder(), HeaderRecorder()
    checker = ("      http_health_check:\n        path: /healthz\n"
               "        request_headers_to_add: [{ header: { key: x-checked-by, value: mesh } }]\n"
               "        request_headers_to_remove: [user-agent]\n")
    try:
        launch(binary, two_host_config(a, b, checker), f"hc-headers-{name}")
        wait_for(lambda: a.heads and b.heads, what="both hosts checked")
        head = a.heads[0]
        assert "x-checked-by: mesh" in head
        assert not any(line.startswith("user-agent:") for line in head)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_http_health_checks_over_http2(launch, binary, name):
    # The checked host is an h2c-only listener (a meshproxy answering /healthz 200 and /sick 503 itself), so only
    # checks spoken in HTTP/2 get an answer.
    routes = ("            - match: { path: /healthz }\n              direct_response: { status: 200 }\n"
              "            - match: { prefix: / }\n              direct_response: { status: 503 }\n")
    inner = launch(MESHPROXY, lambda l, a: http_bootstrap(l, a, routes, [], hcm_extra="          codec_type: HTTP2\n")
                   .replace("  clusters:\n", "  clusters: []\n"), f"hc-h2-inner-{name}")

    def config(path):
        cluster = f"""  - name: app
    type: STATIC
    health_checks:
    - {{ timeout: 0.5s, interval: 0.2s, no_traffic_interval: 0.2s, unhealthy_threshold: 1, healthy_threshold: 1,
        http_health_check: {{ path: {path}, codec_client_type: HTTP2 }} }}
    load_assignment: {{ cluster_name: app, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {inner.port} }} }} }} }}] }}] }}
"""
        return lambda l, a: http_bootstrap(l, a, "            - match: { prefix: / }\n              route: { cluster: app }\n",
                                           [cluster])

    healthy = launch(binary, config("/healthz"), f"hc-h2-ok-{name}")
    wait_for(lambda: flags(healthy, inner.port) == "healthy", what="the h2c host passes HTTP/2 checks")
    sick = launch(binary, config("/sick"), f"hc-h2-sick-{name}")
    wait_for(lambda: int(sick.stats("cluster.app.")["cluster.app.health_check.failure"]) >= 2, what="503 checks fail")
    assert flags(sick, inner.port) == "/failed_active_hc"
