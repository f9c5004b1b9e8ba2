"""HTTP/1.1 upgrades: a WebSocket echo (Python websockets) through the proxy with 1 MB each way,
Envoy's 403 for upgrades without upgrade_configs, and an ignored h2c upgrade that keeps the
connection serving HTTP/1.1. Every case runs through Envoy 1.40 and meshproxy alike."""
import socket
import threading
import time

import pytest
from websockets.sync.client import connect
from websockets.sync.server import serve

from conftest import ENVOY, MESHPROXY, http_bootstrap, static_cluster
from rawupstream import RawUpstream


def config(upstream_port, websocket=True):
    upgrades = "          upgrade_configs: [{ upgrade_type: websocket }]\n" if websocket else ""

    def make(listener, admin):
        return http_bootstrap(listener, admin, "            - { match: { prefix: / }, route: { cluster: up } }\n",
                              [static_cluster("up", upstream_port)], hcm_extra=upgrades)
    return make


@pytest.fixture(scope="module")
def echo_server():
    def echo(connection):
        for message in connection:
            connection.send(message)

    server = serve(echo, "127.0.0.1", 0, max_size=4 << 20)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.socket.getsockname()[1]
    server.shutdown()


PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


@pytest.mark.parametrize("binary,name", PROXIES)
def test_websocket_echo_of_a_megabyte_each_way(binary, name, echo_server, launch):
    proxy = launch(binary, config(echo_server), f"ws-{name}")
    frames = [bytes([i]) * (64 << 10) for i in range(16)]
    with connect(f"ws://127.0.0.1:{proxy.port}/echo", max_size=4 << 20, open_timeout=10, close_timeout=5) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "hello"
        sender = threading.Thread(target=lambda: [ws.send(frame) for frame in frames])
        sender.start()
        received = [ws.recv(timeout=10) for _ in frames]
        sender.join(timeout=10)
        assert received == frames
        during = proxy.stats("ingress_http.downstream_cx_upgrades")
    assert during["http.ingress_http.downstream_cx_upgrades_total"] == "1"
    assert during["http.ingress_http.downstream_cx_upgrades_active"] == "1"
    deadline = time.monotonic() + 5
    while proxy.stats("upgrades_active")["http.ingress_http.downstream_cx_upgrades_active"] != "0":
        assert time.monotonic() < deadline, "the tunnel did not close with the client"
        time.sleep(0.05)
    stats = proxy.stats("cluster.up.upstream_")
    assert stats["cluster.up.upstream_cx_total"] == "1"
    assert stats["cluster.up.upstream_rq_101"] == "1"


def exchange(port, data, wait=1.5):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
        except socket.timeout:
            return out, False


@pytest.mark.parametrize("binary,name", PROXIES)
def test_upgrades_without_upgrade_configs(binary, name, launch):
    upstream = RawUpstream()
    try:
        proxy = launch(binary, config(upstream.port, websocket=False), f"noupgrade-{name}")
        out, closed = exchange(proxy.port, b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n")
        assert b"connection: close\r\n" in out and closed
        assert upstream.requests == []
        # An h2c upgrade is ignored: both requests are answered over HTTP/1.1 on the one connection.
        out, _ = exchange(proxy.port, b"GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                                      b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
        assert out.count(b"HTTP/1.1 200 OK\r\n") == 2
        assert [line for line, _, _ in upstream.requests] == ["GET /a HTTP/1.1", "GET /b HTTP/1.1"]
        names = [n.lower() for n, _ in upstream.requests[0][1]]
        assert "upgrade" not in names and "http2-settings" not in names
    finally:
        upstream.close()
