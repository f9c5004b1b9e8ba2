"""CONNECT tunnelling (`upgrade_configs: CONNECT`, `connect_matcher`, a route's `connect_config`):
the proxy answers the CONNECT itself, opens a TCP connection to the route's cluster and carries
bytes both ways, over HTTP/1.1 and over HTTP/2 (`allow_connect`). Every case runs through Envoy
1.40 and meshproxy alike, against a TCP echo."""
import socket
import time

import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap, static_cluster
from h2client import H2Client
from loopback_servers import LoopbackServer

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


class TCPEcho(LoopbackServer):
    """Echoes what it reads; `bye` makes it close the connection."""

    def __init__(self):
        self.connections = 0
        self.received = bytearray()
        super().__init__()

    def handle(self, conn):
        self.connections += 1
        with conn:
            while True:
                chunk = conn.recv(65536)
                if not chunk or chunk == b"bye":
                    return
                self.received += chunk
                conn.sendall(chunk)


@pytest.fixture
def echo():
    server = TCPEcho()
    yield server
    server.close()


def config(port, hcm_connect=True, terminate=True, http2=False):
    connect_route = ", upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} }]" if terminate else ""
    extra = "          upgrade_configs: [{ upgrade_type: CONNECT }]\n" if hcm_connect else ""
    if http2:
        extra += "          codec_type: HTTP2\n          http2_protocol_options: { allow_connect: true }\n"

    def make(listener, admin):
        return http_bootstrap(listener, admin,
                              "            - { match: { connect_matcher: {} }, route: { cluster: tunnel"
                              + connect_route + " } }\n"
                              "            - { match: { prefix: / }, direct_response: { status: 200, body: { inline_string: plain } } }\n",
                              [static_cluster("tunnel", port)], hcm_extra=extra)
    return make


def read_until(sock, predicate, timeout=5.0):
    sock.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while not predicate(out) and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    return out


@pytest.mark.parametrize("binary,name", PROXIES)
def test_connect_over_http1_is_terminated_and_tunnelled(binary, name, echo, launch):
    proxy = launch(binary, config(echo.port), f"connect-h1-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
        # The first tunnelled bytes ride with the request.
        client.sendall(b"CONNECT backend.test:443 HTTP/1.1\r\nHost: backend.test:443\r\n\r\nhello")
        out = read_until(client, lambda data: data.endswith(b"hello"))
        head, _, body = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 200 OK"
        names = sorted(line.split(b":")[0].lower() for line in lines[1:])
        assert names == [b"date", b"server"], "a CONNECT's 200 has no body framing"
        assert body == b"hello"
        payload = bytes(range(256)) * 1024
        client.sendall(payload)
        assert read_until(client, lambda data: len(data) >= len(payload), timeout=10) == payload
        stats = proxy.stats("ingress_http.downstream_cx_upgrades")
        assert stats["http.ingress_http.downstream_cx_upgrades_active"] == "1"
        # The upstream closing ends the tunnel.
        client.sendall(b"bye")
        assert read_until(client, lambda data: False, timeout=5) == b""
    assert echo.received == b"hello" + payload
    assert proxy.stats("ingress_http.downstream_cx_upgrades_total")["http.ingress_http.downstream_cx_upgrades_total"] == "1"
    assert proxy.stats("cluster.tunnel.upstream_rq_200")["cluster.tunnel.upstream_rq_200"] == "1"
    # Other requests still route by path.
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
        client.sendall(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
        assert read_until(client, lambda data: data.endswith(b"plain")).startswith(b"HTTP/1.1 200 OK")


@pytest.mark.parametrize("binary,name", PROXIES)
def test_connect_needs_an_upgrade_config_on_the_route_or_the_connection_manager(binary, name, echo, launch):
    refused = launch(binary, config(echo.port, hcm_connect=False, terminate=False), f"connect-403-{name}")
    enabled_by_route = launch(binary, config(echo.port, hcm_connect=False), f"connect-route-{name}")
    request = b"CONNECT backend.test:443 HTTP/1.1\r\nHost: backend.test:443\r\n\r\n"
    with socket.create_connection(("127.0.0.1", refused.port), timeout=5) as client:
        client.sendall(request)
        out = read_until(client, lambda data: False, timeout=3)
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"connection: close\r\n" in out
    assert echo.connections == 0
    with socket.create_connection(("127.0.0.1", enabled_by_route.port), timeout=5) as client:
        client.sendall(request + b"ping")
        assert read_until(client, lambda data: data.endswith(b"ping")).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize("binary,name", PROXIES)
def test_connect_to_a_closed_port_is_a_503(binary, name, launch):
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    port = unused.getsockname()[1]
    unused.close()
    proxy = launch(binary, config(port), f"connect-503-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
        client.sendall(b"CONNECT backend.test:443 HTTP/1.1\r\nHost: backend.test:443\r\n\r\n")
        out = read_until(client, lambda data: b"\r\n\r\n" in data and data.endswith(b"failure"), timeout=5)
    assert out.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert proxy.stats("cluster.tunnel.upstream_cx_connect_fail")["cluster.tunnel.upstream_cx_connect_fail"] == "1"


@pytest.mark.parametrize("binary,name", PROXIES)
def test_connect_over_http2(binary, name, echo, launch):
    proxy = launch(binary, config(echo.port, http2=True), f"connect-h2-{name}")
    client = H2Client(proxy.port)
    try:
        stream = client.conn.get_next_available_stream_id()
        client.conn.send_headers(stream, [(":method", "CONNECT"), (":authority", "backend.test:443")])
        client.flush()
        assert client.pump(lambda: stream in client.headers, timeout=5)
        assert client.headers[stream][":status"] == "200"
        client.conn.send_data(stream, b"over h2")
        client.flush()
        assert client.pump(lambda: bytes(client.data[stream]) == b"over h2", ack={stream}, timeout=5)
        other = client.request("/x")
        assert client.pump(lambda: other in client.ended, timeout=5)
        assert bytes(client.data[other]) == b"plain"
        client.conn.send_data(stream, b"bye")
        client.flush()
        assert client.pump(lambda: stream in client.reset or stream in client.ended, timeout=5)
    finally:
        client.close()
    assert echo.received == b"over h2"


class ConnectProxyUpstream(TCPEcho):
    """An HTTP/1.1 forward proxy's part: answers a CONNECT with 200 and then echoes."""

    def __init__(self):
        self.heads = []
        super().__init__()

    def handle(self, conn):
        read = self.read_head(conn)
        if read is None:
            conn.close()
            return
        head, rest = read
        self.heads.append(head.decode())
        conn.sendall(b"HTTP/1.1 200 Connection established\r\nx-proxy: upstream\r\n\r\n" + rest)
        super().handle(conn)


@pytest.mark.parametrize("binary,name", PROXIES)
def test_a_connect_without_connect_config_is_forwarded(binary, name, launch):
    upstream = ConnectProxyUpstream()
    try:
        proxy = launch(binary, config(upstream.port, terminate=False), f"connect-fwd-{name}")
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as client:
            client.sendall(b"CONNECT backend.test:443 HTTP/1.1\r\nHost: backend.test:443\r\n\r\n")
            out = read_until(client, lambda data: b"\r\n\r\n" in data)
            head = out.split(b"\r\n\r\n")[0].split(b"\r\n")
            assert head[0] == b"HTTP/1.1 200 OK", "the reason phrase is not passed on"
            assert b"x-proxy: upstream" in head
            assert not any(line.lower().startswith((b"transfer-encoding", b"content-length")) for line in head)
            client.sendall(b"through")
            assert read_until(client, lambda data: data.endswith(b"through")).endswith(b"through")
        request = upstream.heads[0].split("\r\n")
        assert request[0] == "CONNECT backend.test:443 HTTP/1.1"
        assert "host: backend.test:443" in request
    finally:
        upstream.close()
