"""Flow control through Envoy 1.40 and meshproxy alike: a client that stops reading a large response
stalls the upstream instead of making the proxy buffer the response, and an upstream that stops reading
a large upload stalls the client; either way the proxy's memory stays flat and every byte arrives."""
import socket
import threading
import time

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from h2client import H2Client

TOTAL = 64 << 20
CHUNK = 1 << 16
# What the kernel's socket buffers on the way may hold (loopback autotuning reaches several MB per socket);
# a proxy without flow control would take in all of TOTAL.
STALLED_BELOW = TOTAL // 2
RSS_GROWTH_MB = 16


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


def read_head(connection):
    data = b""
    while b"\r\n\r\n" not in data:
        part = connection.recv(CHUNK)
        if not part:
            raise ConnectionError("closed before the head ended")
        data += part
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


class FlowUpstream:
    """Answers /small at once; answers /big with TOTAL bytes, counting what the kernel took; on /upload
    reads nothing until `release` is set, then reads the whole body and answers with its length."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        self.received = None
        self.release = threading.Event()
        self.closed = False
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(connection,), daemon=True).start()

    def serve(self, connection):
        with connection:
            try:
                while True:
                    head, rest = read_head(connection)
                    path = head.split(b" ")[1]
                    if path == b"/small":
                        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    elif path == b"/big":
                        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % TOTAL)
                        chunk = b"x" * CHUNK
                        while self.sent < TOTAL:
                            connection.sendall(chunk)
                            self.sent += CHUNK
                    else:
                        self.release.wait(timeout=30)
                        received = len(rest)
                        self.received = received
                        while received < TOTAL:
                            part = connection.recv(1 << 20)
                            if not part:
                                return
                            received += len(part)
                            self.received = received
                        body = b"%d" % received
                        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                return

    def close(self):
        self.closed = True
        self.release.set()
        self.listener.close()


@pytest.fixture
def upstream():
    server = FlowUpstream()
    yield server
    server.close()


def start(binary, name, upstream, launch, buffer_limit=None, hcm_extra=""):
    limit = f"    per_connection_buffer_limit_bytes: {buffer_limit}\n" if buffer_limit else ""

    def config(listener, admin):
        text = http_bootstrap(listener, admin, "            - { match: { prefix: / }, route: { cluster: up, timeout: 30s } }\n",
                              [static_cluster("up", upstream.port, extra=limit)], hcm_extra=hcm_extra)
        return text.replace("  - name: l\n", "  - name: l\n" + limit, 1)

    proxy = launch(binary, config, name)
    assert get(proxy.port, "/small")[0] == 200
    time.sleep(0.3)
    return proxy, rss_mb(proxy.process.proc.pid)


def wait_until_steady(read_count, limit=5.0):
    """Waits until `read_count()` stops moving for half a second (at most `limit` seconds); returns it."""
    deadline = time.monotonic() + limit
    last = read_count()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = read_count()
        if now == last:
            return now
        last = now
    return last


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
@pytest.mark.parametrize("buffer_limit", [None, 32768], ids=["default-limit", "32k-limit"])
def test_a_client_that_stops_reading_stalls_the_upstream(binary, name, buffer_limit, upstream, launch):
    """With the default per_connection_buffer_limit_bytes (1 MiB) and with a small one on the listener and
    the cluster."""
    proxy, base_rss = start(binary, f"flow-down-{name}", upstream, launch, buffer_limit)
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CHUNK)
        client.sendall(b"GET /big HTTP/1.1\r\nhost: flow\r\n\r\n")
        stalled_at = wait_until_steady(lambda: upstream.sent)
        assert 0 < stalled_at < STALLED_BELOW
        assert rss_mb(proxy.process.proc.pid) - base_rss < RSS_GROWTH_MB
        client.settimeout(20)
        head, body = read_head(client)
        assert head.startswith(b"HTTP/1.1 200")
        received = len(body)
        while received < TOTAL:
            part = client.recv(1 << 20)
            assert part, f"closed after {received} bytes"
            received += len(part)
    assert received == TOTAL
    assert upstream.sent == TOTAL


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_an_upstream_that_stops_reading_stalls_the_client(binary, name, upstream, launch):
    proxy, base_rss = start(binary, f"flow-up-{name}", upstream, launch)
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHUNK)
        client.sendall(b"POST /upload HTTP/1.1\r\nhost: flow\r\ncontent-length: %d\r\n\r\n" % TOTAL)
        client.setblocking(False)
        chunk = b"y" * CHUNK
        sent = 0

        def push():
            nonlocal sent
            while sent < TOTAL:
                try:
                    sent += client.send(chunk[:min(CHUNK, TOTAL - sent)])
                except BlockingIOError:
                    return sent
            return sent

        stalled_at = wait_until_steady(push)
        assert 0 < stalled_at < STALLED_BELOW
        assert rss_mb(proxy.process.proc.pid) - base_rss < RSS_GROWTH_MB
        upstream.release.set()
        client.settimeout(20)
        while sent < TOTAL:
            sent += client.send(chunk[:min(CHUNK, TOTAL - sent)])
        head, body = read_head(client)
        expected = b"%d" % TOTAL
        while len(body) < len(expected):
            part = client.recv(CHUNK)
            assert part, "closed before the body ended"
            body += part
    assert head.startswith(b"HTTP/1.1 200")
    assert body == expected


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_an_upstream_that_stops_reading_stalls_only_its_http2_stream(binary, name, upstream, launch):
    """An h2c upload into an upstream that reads nothing: the proxy stops reopening the stream's window
    (64 KiB here; Envoy's default is 256 MiB, which a proxy may buffer), the client stalls, and another
    request on the same connection is answered meanwhile. Once the upstream reads, every byte arrives."""
    window = "          http2_protocol_options: { initial_stream_window_size: 65536 }\n"
    proxy, base_rss = start(binary, f"flow-up-h2-{name}", upstream, launch,
                            hcm_extra="          codec_type: AUTO\n" + window)
    client = H2Client(proxy.port, connection_window=TOTAL)
    try:
        upload = client.request("/upload", method="POST", headers=[("content-length", str(TOTAL))], end_stream=False)
        sent = 0

        def push():
            """Sends while WINDOW_UPDATEs keep coming: until the window stays shut for 0.2 s (or 20 s pass)."""
            nonlocal sent
            deadline = time.monotonic() + 20
            while sent < TOTAL and time.monotonic() < deadline:
                sent += client.send_within_window(upload, TOTAL - sent)
                if not client.pump(lambda: sent == TOTAL or client.conn.local_flow_control_window(upload) > 0,
                                   timeout=0.2):
                    break
            return sent

        stalled_at = wait_until_steady(push)
        assert 0 < stalled_at < STALLED_BELOW
        assert rss_mb(proxy.process.proc.pid) - base_rss < RSS_GROWTH_MB
        other = client.request("/small")
        assert client.pump(lambda: other in client.ended, ack={other}), "the stalled upload holds back only itself"
        assert client.headers[other][":status"] == "200" and bytes(client.data[other]) == b"ok"
        assert upload not in client.ended

        upstream.release.set()
        deadline = time.monotonic() + 20
        while sent < TOTAL and time.monotonic() < deadline:
            push()
        assert sent == TOTAL, (f"sent {sent} of {TOTAL} once the upstream read (it has {upstream.received}); "
                               f"stream window {client.conn.local_flow_control_window(upload)}")
        assert client.pump(lambda: upload in client.ended, ack={upload}, timeout=20), "the upload was answered"
    finally:
        client.close()
    assert client.headers[upload][":status"] == "200"
    assert bytes(client.data[upload]) == b"%d" % TOTAL
