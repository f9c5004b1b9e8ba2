"""HTTP/1.1 behaviour of meshproxy on real sockets: upstream keep-alive, exact upstream request bytes,
chunked streaming both ways, Expect: 100-continue, pipelining, and large bodies in bounded memory."""
import http.client
import socket
import time

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, seed_config, static_cluster
from rawupstream import RawUpstream


@pytest.fixture
def upstream():
    server = RawUpstream()
    yield server
    server.close()


def static_config(upstream_port):
    return lambda l, a: seed_config(upstream_port, l, a).replace("type: LOGICAL_DNS", "type: STATIC")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_upstream_request_bytes_and_keepalive(upstream, launch):
    proxy = launch(MESHPROXY, lambda l, a: seed_config(upstream.port, l, a), "h1-bytes")
    for _ in range(3):
        status, _, body = get(proxy.port, "/headers", headers={"User-Agent": "curl/7.88.1", "Accept": "*/*"})
        assert status == 200
    assert upstream.connections == 1, "three requests should reuse one upstream connection"
    line, headers, _ = upstream.requests[0]
    assert line == "GET /headers HTTP/1.1"
    names = [name for name, _ in headers]
    # Envoy's order: the client's headers (Host rewritten in place), then what the proxy adds.
    assert names == ["host", "accept-encoding", "user-agent", "accept", "x-forwarded-proto", "x-request-id",
                     "x-envoy-expected-rq-timeout-ms", "x-envoy-original-host"]
    assert dict(headers)["host"] == "127.0.0.1"


@pytest.mark.parametrize("binary", [MESHPROXY, ENVOY], ids=["meshproxy", "envoy"])
def test_a_response_to_head_has_no_body_and_the_upstream_connection_is_reused(upstream, launch, binary):
    # The upstream decoder must know the request was a HEAD: its content-length announces a body that never comes.
    proxy = launch(binary, static_config(upstream.port), "h1-head")
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for _ in range(2):
        conn.request("HEAD", "/head")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("content-length") == "10"
        assert response.read() == b""
        conn.request("GET", "/after")
        response = conn.getresponse()
        assert response.status == 200 and response.read() == b"0"
    conn.close()
    assert [line for line, _, _ in upstream.requests] == ["HEAD /head HTTP/1.1", "GET /after HTTP/1.1"] * 2
    assert upstream.connections == 1, "the HEAD's response ended without a body, so the connection was reused"


def test_chunked_both_ways(upstream, launch):
    proxy = launch(MESHPROXY, static_config(upstream.port), "h1-chunked")
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("POST", "/sink", body=iter([b"a" * 1000, b"b" * 2000]), encode_chunked=True,
                 headers={"Transfer-Encoding": "chunked"})
    response = conn.getresponse()
    assert response.status == 200 and response.read() == b"3000"
    conn.request("GET", "/chunked")
    response = conn.getresponse()
    assert response.getheader("transfer-encoding") == "chunked"
    assert response.read() == b"hello, chunked world"
    conn.close()


def test_expect_100_continue(upstream, launch):
    proxy = launch(MESHPROXY, static_config(upstream.port), "h1-expect")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        interim = sock.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(b"hello")
        reply = b""
        while not reply.endswith(b"\r\n\r\n5"):
            chunk = sock.recv(4096)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 OK")
    assert all(name.lower() != "expect" for name, _ in upstream.requests[0][1])


def test_pipelined_requests_answered_in_order(upstream, launch):
    proxy = launch(MESHPROXY, static_config(upstream.port), "h1-pipeline")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                     b"POST /sink HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nz")
        data = b""
        while data.count(b"HTTP/1.1 200 OK") < 2 or not data.endswith(b"1"):
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
    first, second = data.split(b"HTTP/1.1 200 OK")[1:]
    assert first.endswith(b"\r\n\r\n3") and second.endswith(b"\r\n\r\n1")


def test_large_bodies_stream_in_bounded_memory(upstream, launch):
    proxy = launch(MESHPROXY, static_config(upstream.port), "h1-large")
    pid = proxy.process.proc.pid
    get(proxy.port, "/warmup")
    before = rss_kb(pid)
    size = 100 * 1024 * 1024
    block = b"y" * (1 << 20)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=60)
    conn.request("PUT", "/sink", body=(block for _ in range(size // len(block))),
                 headers={"Content-Length": str(size)})
    response = conn.getresponse()
    assert response.status == 200 and response.read() == str(size).encode()
    conn.request("GET", f"/big?n={size}")
    response = conn.getresponse()
    received = 0
    while True:
        chunk = response.read(1 << 20)
        if not chunk:
            break
        received += len(chunk)
    assert received == size
    conn.close()
    grown_mb = (rss_kb(pid) - before) / 1024
    assert grown_mb < 64, f"RSS grew by {grown_mb:.0f} MB while streaming 2 x 100 MB"


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
@pytest.mark.parametrize("action", ["DROP_HEADER", "REJECT_REQUEST"])
def test_headers_with_underscores_action(binary, name, action, launch):
    upstream = RawUpstream()
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, "            - match: { prefix: / }\n              route: { cluster: up }\n",
            [static_cluster("up", upstream.port)],
            hcm_extra=f"          common_http_protocol_options: {{ headers_with_underscores_action: {action} }}\n"),
            f"underscores-{action}-{name}")
        status, headers, body = get(proxy.port, "/", headers={"x_under": "1", "ok-header": "2"})
        stats = proxy.stats("http1.")
        if action == "DROP_HEADER":
            assert status == 200
            sent = [key.lower() for key, _ in upstream.requests[-1][1]]
            assert "ok-header" in sent and "x_under" not in sent
            assert stats["http1.dropped_headers_with_underscores"] == "1"
        else:
            assert (status, body) == (400, b"Bad Request")
            assert dict((k.lower(), v) for k, v in headers)["connection"] == "close"
            assert not upstream.requests
            assert stats["http1.requests_rejected_with_underscores_in_headers"] == "1"
    finally:
        upstream.close()


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_a_request_that_cannot_be_parsed_gets_400_and_a_close(binary, name, upstream, launch):
    proxy = launch(binary, static_config(upstream.port), f"h1-malformed-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nno colon in this header\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):  # until the proxy closes (bounded by the socket timeout)
            data += chunk
            assert len(data) < 65536
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
    assert b"\r\nconnection: close\r\n" in data.lower(), data
    assert data.endswith(b"\r\n\r\nBad Request"), data
    assert not upstream.requests
    stat = "http.ingress_http.downstream_cx_protocol_error"
    assert proxy.stats(stat)[stat] == "1"


def read_until_closed(sock):
    data = b""
    while chunk := sock.recv(4096):  # until the proxy closes (bounded by the socket timeout)
        data += chunk
        assert len(data) < 65536
    return data


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_request_headers_over_60_kb_get_431_and_a_close(binary, name, upstream, launch):
    proxy = launch(binary, static_config(upstream.port), f"h1-big-head-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nx-big: " + b"a" * (61 * 1024) + b"\r\n\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), data
    assert b"\r\nconnection: close\r\n" in data.lower(), data
    assert not upstream.requests
    stat = "http.ingress_http.downstream_cx_protocol_error"
    assert proxy.stats(stat)[stat] == "1"


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
@pytest.mark.parametrize("framing,status", [
    (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"400 Bad Request"),
    (b"Content-Length: 5\r\nContent-Length: 6\r\n", b"400 Bad Request"),
    # Envoy takes no transfer coding but chunked alone.
    (b"Transfer-Encoding: chunked, identity\r\n", b"501 Not Implemented"),
    (b"Transfer-Encoding: gzip, chunked\r\n", b"501 Not Implemented"),
    (b"Transfer-Encoding: identity\r\n", b"501 Not Implemented"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"501 Not Implemented"),
])
def test_ambiguous_request_framing_is_refused_and_nothing_goes_upstream(binary, name, framing, status, upstream, launch):
    proxy = launch(binary, static_config(upstream.port), f"h1-smuggle-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"POST /sink HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 " + status + b"\r\n"), data
    assert b"\r\nconnection: close\r\n" in data.lower(), data
    assert data.count(b"HTTP/1.1") == 1, data
    assert not upstream.requests
    stat = "http.ingress_http.downstream_cx_protocol_error"
    assert proxy.stats(stat)[stat] == "1"


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_max_request_headers_kb_bounds_the_head(binary, name, upstream, launch):
    def config(listener_port, admin_port):
        return static_config(upstream.port)(listener_port, admin_port).replace(
            "stat_prefix: ingress_http", "stat_prefix: ingress_http\n          max_request_headers_kb: 2", 1)

    proxy = launch(binary, config, f"h1-head-kb-{name}")
    status, _, _ = get(proxy.port, "/get", headers={"x-fill": "a" * 1500})
    assert status == 200
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\nx-fill: " + b"a" * 2500 + b"\r\n\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), data
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_a_bad_pipelined_request_is_answered_after_the_one_before_it(binary, name, upstream, launch):
    proxy = launch(binary, static_config(upstream.port), f"h1-pipeline-bad-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(b"GET /get HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nno colon\r\n\r\n")
        data = read_until_closed(sock)
    # The 200 whole first (its body may run straight into the next status line), then the 400.
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert data.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 400 Bad Request\r\n" in data, data
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_a_request_sent_a_few_bytes_at_a_time_is_served(binary, name, upstream, launch):
    proxy = launch(binary, static_config(upstream.port), f"h1-trickle-{name}")
    request = b"POST /sink HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(request), 3):  # ~30 writes, 5 ms apart: each a read of its own
            sock.sendall(request[start:start + 3])
            time.sleep(0.005)
        data = b""
        while not data.endswith(b"\r\n\r\n3"):
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
            assert len(data) < 65536
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data
    assert upstream.requests[0][2] == 3


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
@pytest.mark.parametrize("request_line", [b"GET /a#b HTTP/1.1", b"QUERY /get HTTP/1.1", b"FETCH /get HTTP/1.1"])
def test_a_fragment_or_an_unknown_method_gets_400(binary, name, request_line, upstream, launch):
    proxy = launch(binary, static_config(upstream.port), f"h1-bad-line-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(request_line + b"\r\nHost: x\r\n\r\n")
        data = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 400 Bad Request\r\n"), data
    assert not upstream.requests
