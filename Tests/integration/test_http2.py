"""HTTP/2 on the downstream side (h2c prior knowledge on the AUTO codec, codec_type HTTP2) and the
upstream side (HTTP/2 clusters), with curl and h2load on loopback, compared with Envoy 1.40 where
the outcome can be compared."""
import re
import socket
import subprocess
import time

import h2.errors
import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap, static_cluster
from h2client import H2Client


def config(upstream_port, codec="AUTO"):
    def make(listener, admin):
        return http_bootstrap(listener, admin, "            - { match: { prefix: / }, route: { cluster: raw } }\n",
                              [static_cluster("raw", upstream_port)], hcm_extra=f"          codec_type: {codec}\n")
    return make


def curl(port, path, *extra):
    out = subprocess.run(["curl", "-s", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
                          *extra, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=20)
    return out.stdout




@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_h2c_request_reaches_an_http1_upstream_as_the_same_request(binary, name, raw, launch):
    proxy = launch(binary, config(raw.port), f"h2c-{name}")
    assert curl(proxy.port, "/one", "-H", "x-test: 1") == "200 1.1"
    assert curl(proxy.port, "/two", "--http2-prior-knowledge", "-H", "x-test: 1") == "200 2"
    assert curl(proxy.port, "/post", "--http2-prior-knowledge", "--data-binary", "hello") == "200 2"
    (line1, headers1, _), (line2, headers2, _), (line3, headers3, length3) = raw.requests
    assert line1 == "GET /one HTTP/1.1" and line2 == "GET /two HTTP/1.1"
    assert [n.lower() for n, _ in headers1] == [n.lower() for n, _ in headers2]
    assert dict(headers2)["host"] == f"127.0.0.1:{proxy.port}"
    assert line3 == "POST /post HTTP/1.1" and length3 == 5
    assert "content-length" in [n.lower() for n, _ in headers3]
    stats = proxy.stats("ingress_http.downstream_")
    assert stats["http.ingress_http.downstream_cx_http1_total"] == "1"
    assert stats["http.ingress_http.downstream_cx_http2_total"] == "2"
    assert stats["http.ingress_http.downstream_rq_http2_total"] == "2"


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_h2c_requests_and_responses_take_http1_framing_as_envoy_gives_them(binary, name, raw, launch):
    proxy = launch(binary, config(raw.port), f"h2c-framing-{name}")
    client = H2Client(proxy.port)
    try:
        head = client.request("/head", method="HEAD")
        get = client.request("/get")
        post = client.request("/post", method="POST", body=b"hello")
        empty = client.request("/empty", method="POST")
        streams = (head, get, post, empty)
        assert client.pump(lambda: all(stream in client.ended for stream in streams))
    finally:
        client.close()
    # A response without a body is one HEADERS frame that ends the stream; one with a body ends on DATA.
    assert head in client.ended_on_headers and client.headers[head]["content-length"] == "10"
    assert get not in client.ended_on_headers and bytes(client.data[get]) == b"0"
    assert bytes(client.data[post]) == b"5" and bytes(client.data[empty]) == b"0"
    assert all(client.headers[stream][":status"] == "200" for stream in streams)
    requests = {line.split()[1]: (dict((n.lower(), v) for n, v in headers), length)
                for line, headers, length in raw.requests}
    # A body whose length the client did not give goes upstream chunked; no body at all, as length 0.
    assert requests["/post"][0].get("transfer-encoding") == "chunked" and requests["/post"][1] == 5
    assert requests["/empty"][0].get("content-length") == "0"
    assert "content-length" not in requests["/get"][0] and "transfer-encoding" not in requests["/get"][0]


BASE = [(":method", "GET"), (":path", "/bad"), (":scheme", "http"), (":authority", "test")]
MALFORMED = {
    "upper-case name": BASE + [("X-Upper", "1")],
    "name not a token": BASE + [("bad name", "1")],
    "connection-specific field": BASE + [("connection", "keep-alive")],
    "transfer-encoding": BASE + [("transfer-encoding", "chunked")],
    "te other than trailers": BASE + [("te", "gzip")],
    "cr in a value": BASE + [("x-split", "a\rb")],
    "pseudo-header after a regular field": BASE[:3] + [("x-a", "1"), (":authority", "test")],
    "unknown pseudo-header": BASE + [(":foo", "1")],
    "response pseudo-header": BASE + [(":status", "200")],
    "duplicate :path": BASE + [(":path", "/again")],
    "empty :path": [(":method", "GET"), (":path", ""), (":scheme", "http"), (":authority", "test")],
    "no :scheme": [(":method", "GET"), (":path", "/bad"), (":authority", "test")],
    "no :method": [(":path", "/bad"), (":scheme", "http"), (":authority", "test")],
    "space in :path": [(":method", "GET"), (":path", "/a b"), (":scheme", "http"), (":authority", "test")],
    "CONNECT with :path": [(":method", "CONNECT"), (":authority", "test:443"), (":path", "/")],
    ":protocol without extended CONNECT": BASE + [(":protocol", "websocket")],
    "no :authority or host": [(":method", "GET"), (":path", "/bad"), (":scheme", "http")],
    "content-length without the body": BASE + [("content-length", "5")],
}


def send_malformed(port, fields):
    """A malformed request and a good one after it on a new connection; the client once the bad one was reset and
    the good one answered, or the connection closed."""
    client = H2Client(port)
    try:
        client.conn.config.validate_outbound_headers = False
        client.conn.config.normalize_outbound_headers = False
        bad = client.conn.get_next_available_stream_id()
        client.conn.send_headers(bad, fields, end_stream=True)
        client.flush()
        good = client.request("/after", headers=[("te", "trailers")])
        client.pump(lambda: (bad in client.reset and good in client.ended) or client.closed, timeout=5)
    finally:
        client.close()
    return client, bad, good


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_a_malformed_h2c_request_closes_its_connection_by_default(binary, name, raw, launch):
    """RFC 9113 § 8.2-8.3 make these requests malformed; Envoy (without `stream_error_on_invalid_http_message`)
    closes the connection, the request after them unanswered, and nothing of them goes upstream."""
    proxy = launch(binary, config(raw.port), f"h2c-malformed-{name}")
    for case, fields in MALFORMED.items():
        client, bad, good = send_malformed(proxy.port, fields)
        assert client.closed and good not in client.headers, case
    assert raw.requests == []
    assert proxy.stats().get("http2.rx_messaging_error") == str(len(MALFORMED))


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_with_stream_error_on_invalid_http_message_a_malformed_h2c_request_resets_only_its_stream(
        binary, name, raw, launch):
    def make(listener, admin):
        return http_bootstrap(listener, admin, "            - { match: { prefix: / }, route: { cluster: raw } }\n",
                              [static_cluster("raw", raw.port)],
                              hcm_extra="          codec_type: AUTO\n          stream_error_on_invalid_http_message: true\n")
    proxy = launch(binary, make, f"h2c-malformed-stream-error-{name}")
    for case, fields in MALFORMED.items():
        client, bad, good = send_malformed(proxy.port, fields)
        assert client.reset_codes.get(bad) == h2.errors.ErrorCodes.PROTOCOL_ERROR, case
        assert client.headers[good][":status"] == "200", case
    assert [line.split()[1] for line, _, _ in raw.requests] == ["/after"] * len(MALFORMED)
    assert proxy.stats().get("http2.rx_messaging_error") == str(len(MALFORMED))


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_an_h2c_request_is_logged_with_its_connection_addresses(binary, name, raw, launch, workdir):
    """The access log line of an h2c stream, written after its response ended, names the downstream
    connection's addresses (meshproxy's streams have no channel of their own to ask)."""
    log = workdir / f"h2c-access-{name}.log"

    def make(listener, admin):
        access_log = (
            "          access_log:\n"
            "          - name: envoy.access_loggers.file\n"
            "            typed_config:\n"
            '              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog\n'
            f"              path: {log}\n"
            "              log_format: { text_format_source: { inline_string: \"%PROTOCOL% %RESPONSE_CODE% "
            "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %DOWNSTREAM_LOCAL_ADDRESS%\\n\" } }\n")
        return http_bootstrap(listener, admin, "            - { match: { prefix: / }, route: { cluster: raw } }\n",
                              [static_cluster("raw", raw.port)], hcm_extra="          codec_type: AUTO\n" + access_log)
    proxy = launch(binary, make, f"h2c-log-{name}", extra_args=("--file-flush-interval-msec", "50"))
    assert curl(proxy.port, "/logged", "--http2-prior-knowledge") == "200 2"
    deadline = time.monotonic() + 5
    while not (log.exists() and log.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.read_text().splitlines() == [f"HTTP/2 200 127.0.0.1 127.0.0.1:{proxy.port}"]


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_an_http2_connection_error_sends_goaway_before_the_close(binary, name, raw, launch):
    """DATA on stream 0 is a connection error of type PROTOCOL_ERROR (RFC 9113 § 6.1): a GOAWAY with that code,
    then the close (meshproxy closed at once, its GOAWAY unsent)."""
    proxy = launch(binary, config(raw.port), f"h2c-connection-error-{name}")
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
    data_on_stream_0 = bytes.fromhex("00000400" "00" "00000000") + b"abcd"
    received = b""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(preface + data_on_stream_0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
    frames = []
    while len(received) >= 9:
        length = int.from_bytes(received[:3], "big")
        frames.append((received[3], received[9:9 + length]))
        received = received[9 + length:]
    goaways = [payload for kind, payload in frames if kind == 7]
    assert goaways, frames
    assert int.from_bytes(goaways[0][4:8], "big") == h2.errors.ErrorCodes.PROTOCOL_ERROR
    assert raw.requests == []


def test_h2load_multiplexes_through_http2_codec_and_http2_upstream(raw, launch):
    # An h2c-only outer proxy routes to an inner listener over an HTTP/2 cluster; the inner one
    # speaks HTTP/1.1 to the raw upstream. Both listeners live in one meshproxy.
    inner = launch(MESHPROXY, config(raw.port), "h2-inner")
    outer_config = config(inner.port, codec="HTTP2")

    def make(listener, admin):
        text = outer_config(listener, admin)
        return text.replace("  - name: raw\n    type: STATIC\n", """  - name: raw
    type: STATIC
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: { max_concurrent_streams: 50 } }
""")
    outer = launch(MESHPROXY, make, "h2-outer")
    out = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", f"http://127.0.0.1:{outer.port}/x"],
                         capture_output=True, text=True, timeout=60)
    assert re.search(r"requests: 2000 total, 2000 started, 2000 done, 2000 succeeded", out.stdout), out.stdout
    assert "status codes: 2000 2xx" in out.stdout
    outer_stats = outer.stats("cluster.raw.")
    assert outer_stats["cluster.raw.upstream_cx_http2_total"] == outer_stats["cluster.raw.upstream_cx_total"]
    assert int(outer_stats["cluster.raw.upstream_cx_total"]) <= 2, "streams share a connection per worker"
    assert outer_stats["cluster.raw.upstream_rq_200"] == "2000"
    assert outer_stats["cluster.raw.upstream_rq_tx_reset"] == "0"
    inner_stats = inner.stats("ingress_http.downstream_rq_http2_total")
    assert inner_stats["http.ingress_http.downstream_rq_http2_total"] == "2000"
    # An HTTP/1.1 request to the h2c-only listener is not served.
    assert not curl(outer.port, "/x").startswith("200")


def test_volatile_response_fields_are_indexed_once_per_h2c_connection(raw, launch):
    """meshproxy's HPACK choice, read by an independent decoder (hpack, under h2): over several
    responses on one connection, `x-envoy-upstream-service-time` takes one table entry (its name is
    indexed once and later values refer to it), `date` none, and every response still carries both."""
    proxy = launch(MESHPROXY, config(raw.port), "h2c-indexing")
    client = H2Client(proxy.port)
    try:
        for index in range(5):
            stream = client.request(f"/r{index}")
            assert client.pump(lambda: stream in client.ended)
            headers = client.headers[stream]
            assert headers[":status"] == "200"
            assert re.fullmatch(r"\d+", headers["x-envoy-upstream-service-time"])
            assert headers["date"].endswith(" GMT")
        table = [(bytes(name), bytes(value)) for name, value in client.conn.decoder.header_table.dynamic_entries]
        names = [name for name, _ in table]
        assert names.count(b"x-envoy-upstream-service-time") == 1, table
        assert b"date" not in names, table
    finally:
        client.close()
