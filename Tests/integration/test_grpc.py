"""gRPC and HTTP/2 through meshproxy on loopback: h2c downstream, HTTP/2 upstream, all four call kinds
with grpcio as an independent client and server, trailers, gRPC local replies and timeouts compared
with Envoy 1.40, and gRPC-aware retries."""
import struct

import grpc
import pytest

from conftest import ENVOY, MESHPROXY, free_port, http_bootstrap, static_cluster
from grpc_echo import EchoServer
from h2client import H2Client


def grpc_config(echo_port, dead_port):
    routes = """            - match: { prefix: /mesh.Echo/Flaky }
              route: { cluster: echo, retry_policy: { retry_on: unavailable, num_retries: 3 } }
            - match: { prefix: /mesh.Echo/ }
              route: { cluster: echo, max_stream_duration: { grpc_timeout_header_max: 0s } }
              request_headers_to_remove: [grpc-timeout]
            - match: { prefix: /mesh.Down/ }
              route: { cluster: down }
"""
    http2 = """    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
"""

    def make(listener, admin):
        return http_bootstrap(listener, admin, routes, [
            static_cluster("echo", echo_port, extra=http2),
            static_cluster("down", dead_port, extra="    http2_protocol_options: {}\n"),
        ], stat_prefix="ingress_grpc")
    return make


@pytest.fixture(scope="module")
def echo():
    server = EchoServer().start()
    yield server
    server.stop()


def call(channel, method, kind="unary_unary"):
    return getattr(channel, kind)(f"/mesh.Echo/{method}")


def test_all_four_call_kinds_with_trailers_through_meshproxy(echo, launch):
    proxy = launch(MESHPROXY, grpc_config(echo.port, free_port()), "grpc")
    options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
    with grpc.insecure_channel(f"127.0.0.1:{proxy.port}", options=options) as channel:
        assert call(channel, "Unary")(b"hello", timeout=10, metadata=(("x-client", "py"),)) == b"hello"
        assert echo.seen_metadata[-1].get("x-client") == "py"
        assert echo.seen_metadata[-1].get("x-forwarded-proto") == "http"

        streamed = list(call(channel, "ServerStream", "unary_stream")(b"20:65536", timeout=10))
        assert [len(m) for m in streamed] == [65536] * 20
        assert streamed[1] == b"B" * 65536

        chunks = [bytes([i]) * (256 << 10) for i in range(16)]
        assert call(channel, "ClientStream", "stream_unary")(iter(chunks), timeout=10) == str(4 << 20).encode()

        big = [bytes([i]) * (1 << 20) for i in range(4)]
        assert list(call(channel, "Bidi", "stream_stream")(iter(big), timeout=20)) == big

        response, rpc = call(channel, "Trailers").with_call(b"t", timeout=10)
        assert response == b"t"
        assert ("x-echo-trailer", "t1") in rpc.trailing_metadata()

        with pytest.raises(grpc.RpcError) as failed:
            call(channel, "Unary")(b"fail:FAILED_PRECONDITION:not today", timeout=10)
        assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert failed.value.details() == "not today"

    stats = proxy.stats()
    assert int(stats["http.ingress_grpc.downstream_cx_http2_total"]) >= 1
    assert int(stats["http.ingress_grpc.downstream_rq_http2_total"]) == 6
    assert stats["cluster.echo.upstream_cx_http2_total"] == "1", "one multiplexed upstream connection"
    assert stats["cluster.echo.upstream_rq_200"] == "6"


def test_retry_on_grpc_unavailable(echo, launch):
    proxy = launch(MESHPROXY, grpc_config(echo.port, free_port()), "grpc-retry")
    with grpc.insecure_channel(f"127.0.0.1:{proxy.port}") as channel:
        assert call(channel, "Flaky")(b"retry-key:3", timeout=10) == b"ok after 3"
    assert proxy.stats()["cluster.echo.upstream_rq_retry"] == "2"


def raw_grpc(port, path, payload=b"", headers=()):
    """One gRPC request at the frame level (h2 over h2c): (HTTP status, response headers, trailers)."""
    client = H2Client(port)
    try:
        frame = b"\x00" + struct.pack(">I", len(payload)) + payload
        stream = client.request(path, "POST", [("content-type", "application/grpc"), ("te", "trailers"), *headers],
                                body=frame)
        assert client.pump(lambda: stream in client.ended or stream in client.reset, ack={stream}, timeout=10)
        response = dict(client.headers[stream])
        return int(response.pop(":status")), response, client.trailers.get(stream, {})
    finally:
        client.close()


def local_replies(binary, name, echo, launch):
    proxy = launch(binary, grpc_config(echo.port, free_port()), name)
    results = {
        "no_route": raw_grpc(proxy.port, "/mesh.Nowhere/X"),
        "down": raw_grpc(proxy.port, "/mesh.Down/X"),
        "grpc_timeout": raw_grpc(proxy.port, "/mesh.Echo/Slow", b"3", [("grpc-timeout", "300m")]),
    }
    stats = proxy.stats()
    return results, stats


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_grpc_local_replies_and_grpc_timeout_match_envoy(binary, name, echo, launch):
    results, stats = local_replies(binary, f"grpc-local-{name}", echo, launch)
    status, headers, _ = results["no_route"]
    assert (status, headers["content-type"], headers["grpc-status"]) == (200, "application/grpc", "12")
    assert "grpc-message" not in headers
    status, headers, _ = results["down"]
    assert (status, headers["grpc-status"]) == (200, "14")
    assert headers["grpc-message"].startswith("upstream connect error or disconnect/reset before headers.")
    # The client's grpc-timeout bounds the stream: Envoy's HCM answers DEADLINE_EXCEEDED and resets the upstream
    # stream; the cluster records no response and no upstream timeout. (The route removes grpc-timeout upstream, so
    # the echo server's own deadline cannot answer first on a loaded machine.)
    status, headers, _ = results["grpc_timeout"]
    assert (status, headers["grpc-status"], headers["grpc-message"]) == (200, "4", "downstream duration timeout")
    assert stats["http.ingress_grpc.downstream_rq_max_duration_reached"] == "1"
    assert stats["cluster.echo.upstream_rq_tx_reset"] == "1"
    assert stats["cluster.echo.upstream_rq_timeout"] == "0"
    assert stats.get("cluster.echo.upstream_rq_504", "0") == "0"
    assert stats["cluster.down.upstream_rq_503"] == "1"
    assert stats["http.ingress_grpc.downstream_rq_2xx"] == "3"
    assert stats["http.ingress_grpc.no_route"] == "1"


GRPC_STATS_VARIANTS = {
    "default": "",
    "all-methods": ", stats_for_all_methods: true, replace_dots_in_grpc_service_name: true",
    "allowlist": ", individual_method_stats_allowlist: { services: [{ name: mesh.Echo, method_names: [Unary] }] }",
}


@pytest.mark.parametrize("variant", list(GRPC_STATS_VARIANTS))
def test_grpc_stats_filter_counts_calls_and_messages_as_envoy(echo, launch, variant):
    """envoy.filters.http.grpc_stats: calls, outcomes, status codes and message counts per cluster or per
    method, in /stats and /stats/prometheus exactly as Envoy 1.40 prints them."""
    filter_yaml = ("          - name: envoy.filters.http.grpc_stats\n"
                   "            typed_config: { \"@type\": type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig"
                   + GRPC_STATS_VARIANTS[variant] + " }\n")
    http2 = """    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
"""

    def make(listener, admin):
        text = http_bootstrap(listener, admin, "            - match: { prefix: / }\n              route: { cluster: echo }\n",
                              [static_cluster("echo", echo.port, extra=http2)], stat_prefix="g")
        return text.replace("          http_filters:\n", "          http_filters:\n" + filter_yaml)

    seen = {}
    for binary, name in [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]:
        proxy = launch(binary, make, f"grpc-stats-{variant}-{name}")
        with grpc.insecure_channel(f"127.0.0.1:{proxy.port}") as channel:
            assert call(channel, "Unary")(b"hi", timeout=5) == b"hi"
            with pytest.raises(grpc.RpcError):
                call(channel, "Unary")(b"fail:5:nope", timeout=5)
            assert len(list(call(channel, "ServerStream", "unary_stream")(b"3:10", timeout=5))) == 3
            assert list(call(channel, "Bidi", "stream_stream")(iter([b"a", b"b"]), timeout=5)) == [b"a", b"b"]
            with pytest.raises(grpc.RpcError):
                channel.unary_unary("/other.Svc/Do")(b"x", timeout=5)
        _, text = proxy.admin_get("/stats")
        _, prometheus = proxy.admin_get("/stats/prometheus")
        seen[name] = (sorted(line for line in text.splitlines() if ".grpc." in line),
                      sorted(line for line in prometheus.splitlines() if "_grpc_" in line and not line.startswith("#")))
    assert seen["meshproxy"] == seen["envoy"]
    stats = dict(line.split(": ") for line in seen["meshproxy"][0])
    assert stats["cluster.echo.grpc.total" if variant == "default" else
                 "cluster.echo.grpc.mesh_Echo.Unary.total" if variant == "all-methods" else
                 "cluster.echo.grpc.mesh.Echo.Unary.total"] in ("2", "5")
