"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT, `allow_connect`): the proxy makes an HTTP/1.1
upgrade of it upstream, answers the upstream's 101 with a 200 and carries the stream's DATA both
ways. Every case runs through Envoy 1.40 and meshproxy alike, with the h2 library as the client."""
import threading
import time

import h2.settings
import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap, static_cluster
from h2client import H2Client
from loopback_servers import LoopbackServer

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


class UpgradeEcho(LoopbackServer):
    """An HTTP/1.1 upstream: an upgrade request gets a 101 and then its bytes echoed (`bye` closes
    the connection); any other request gets a 404."""

    def __init__(self):
        self.heads = []
        self.closed_by_proxy = threading.Event()
        super().__init__()

    def handle(self, conn):
        with conn:
            read = self.read_head(conn)
            if read is None:
                return
            head, rest = read
            self.heads.append(head.decode())
            if b"\r\nupgrade: websocket" not in head.lower():
                conn.sendall(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n"
                         b"x-upstream: ws\r\n\r\n")
            if rest:
                conn.sendall(rest)
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    self.closed_by_proxy.set()
                    return
                if chunk == b"bye":
                    return
                conn.sendall(chunk)


@pytest.fixture
def upstream():
    echo = UpgradeEcho()
    yield echo
    echo.close()


def config(upstream_port, websocket=True):
    extra = (("          upgrade_configs: [{ upgrade_type: websocket }]\n" if websocket else "") +
             "          codec_type: HTTP2\n"
             "          http2_protocol_options: { allow_connect: true }\n")

    def make(listener, admin):
        return http_bootstrap(listener, admin, "            - { match: { prefix: / }, route: { cluster: up } }\n",
                              [static_cluster("up", upstream_port)], hcm_extra=extra)
    return make


def connect_client(proxy):
    client = H2Client(proxy.port)
    assert client.pump(lambda: client.conn.remote_settings.get(h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL) == 1,
                       timeout=5), "SETTINGS_ENABLE_CONNECT_PROTOCOL was not advertised"
    return client


def open_websocket(client, path="/chat"):
    stream = client.conn.get_next_available_stream_id()
    client.conn.send_headers(stream, [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                                      (":path", path), (":authority", "ws.test"), ("sec-websocket-version", "13")])
    client.flush()
    return stream


def send_within_windows(client, stream, payload):
    """Sends as flow control allows, reading (and acknowledging) the echo while the window is shut."""
    while payload:
        window = min(client.conn.local_flow_control_window(stream), client.conn.max_outbound_frame_size)
        if window <= 0:
            assert client.pump(lambda: client.conn.local_flow_control_window(stream) > 0, ack={stream}, timeout=10)
            continue
        client.conn.send_data(stream, payload[:window])
        client.flush()
        payload = payload[window:]


def wait_for(condition, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize("binary,name", PROXIES)
def test_websocket_over_http2_echoes_a_megabyte_each_way(binary, name, upstream, launch):
    proxy = launch(binary, config(upstream.port), f"ws-h2-{name}")
    client = connect_client(proxy)
    try:
        stream = open_websocket(client)
        assert client.pump(lambda: stream in client.headers, timeout=5)
        response = client.headers[stream]
        assert response[":status"] == "200" and response["x-upstream"] == "ws"
        assert "upgrade" not in response and "connection" not in response
        head = upstream.heads[0].split("\r\n")
        assert head[0] == "GET /chat HTTP/1.1"
        fields = [line.split(": ", 1)[0] for line in head[1:]]
        assert "upgrade: websocket" in head and "connection: upgrade" in head and "host: ws.test" in head
        assert not any(field.startswith(":") for field in fields)

        payload = bytes(range(256)) * 4096
        send_within_windows(client, stream, payload)
        assert client.pump(lambda: len(client.data[stream]) >= len(payload), ack={stream}, timeout=15)
        assert bytes(client.data[stream]) == payload

        # The connection keeps serving other streams beside the tunnel.
        other = client.request("/plain")
        assert client.pump(lambda: other in client.ended, timeout=5)
        assert client.headers[other][":status"] == "404"

        stats = proxy.stats("ingress_http.downstream_cx_upgrades")
        assert stats["http.ingress_http.downstream_cx_upgrades_total"] == "1"
        assert stats["http.ingress_http.downstream_cx_upgrades_active"] == "1"
        assert proxy.stats("cluster.up.upstream_rq_101")["cluster.up.upstream_rq_101"] == "1"

        # The client's reset closes the upstream connection and ends the tunnel.
        client.cancel(stream)
        assert upstream.closed_by_proxy.wait(5), "the upstream connection outlived the stream's reset"
        wait_for(lambda: proxy.stats("upgrades_active")["http.ingress_http.downstream_cx_upgrades_active"] == "0",
                 "the tunnel was still counted active")
    finally:
        client.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_the_upstream_closing_resets_the_stream(binary, name, upstream, launch):
    proxy = launch(binary, config(upstream.port), f"ws-h2-close-{name}")
    client = connect_client(proxy)
    try:
        stream = open_websocket(client)
        # Bytes sent before the 200 arrives are held for the tunnel, not lost.
        client.conn.send_data(stream, b"early")
        client.flush()
        assert client.pump(lambda: bytes(client.data[stream]) == b"early", ack={stream}, timeout=5)
        assert client.headers[stream][":status"] == "200"
        client.conn.send_data(stream, b"bye")
        client.flush()
        assert client.pump(lambda: stream in client.reset or stream in client.ended, timeout=5)
        assert stream in client.reset
    finally:
        client.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_no_tunnel_without_a_websocket_upgrade_config(binary, name, upstream, launch):
    proxy = launch(binary, config(upstream.port, websocket=False), f"ws-h2-refused-{name}")
    client = connect_client(proxy)
    try:
        stream = open_websocket(client)
        client.pump(lambda: stream in client.ended or stream in client.reset or client.goaway is not None, timeout=5)
        assert client.headers.get(stream, {}).get(":status") in (None, "403")
        if name == "meshproxy":
            # Envoy also sends GOAWAY, which can hide its 403 from the h2 library.
            assert client.headers[stream][":status"] == "403"
        assert upstream.heads == []
    finally:
        client.close()
