"""OpenTelemetry tracing through two chained proxies to a loopback OTLP collector: W3C traceparent
and tracestate carried upstream, the first proxy exporting over gRPC and the second over HTTP, Envoy's
span attributes, and parent/child links across the proxies. The first proxy is meshproxy or Envoy 1.40."""
import time

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from otlp_collector import OTLPCollector
from rawupstream import RawUpstream

HTTP2 = """    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
"""


def config(next_port, collector, service, over_grpc):
    if over_grpc:
        exporter = "                grpc_service: { envoy_grpc: { cluster_name: otel } }\n"
        collector_cluster = static_cluster("otel", collector.grpc_port, HTTP2)
    else:
        exporter = ("                http_service: { http_uri: { uri: \"http://127.0.0.1/v1/traces\", cluster: otel,"
                    " timeout: 1s } }\n")
        collector_cluster = static_cluster("otel", collector.http_port)
    tracing = f"""          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
{exporter}                service_name: {service}
"""

    def make(listener, admin):
        return http_bootstrap(listener, admin, "            - { match: { prefix: / }, route: { cluster: next } }\n",
                              [static_cluster("next", next_port), collector_cluster], hcm_extra=tracing)
    return make


def wait_for_spans(collector, count, timeout=15):
    deadline = time.monotonic() + timeout
    while len(collector.spans) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(collector.spans)


def attributes(span):
    return {kv.key: kv.value.string_value for kv in span.attributes}


@pytest.mark.parametrize("first_binary,first_name", [(MESHPROXY, "meshproxy"), (ENVOY, "envoy")])
def test_spans_link_across_two_proxies(first_binary, first_name, launch):
    upstream, collector = RawUpstream(), OTLPCollector()
    try:
        second = launch(MESHPROXY, config(upstream.port, collector, "svc-b", over_grpc=False), f"otel-b-{first_name}",
                        extra_args=("--service-node", "node-b"))
        first = launch(first_binary, config(second.port, collector, "svc-a", over_grpc=True), f"otel-a-{first_name}",
                       extra_args=("--service-node", "node-a"))
        for index in range(5):
            assert get(first.port, f"/traced/{index}")[0] == 200
        assert wait_for_spans(collector, 10) == 10, [attributes(s) for _, _, s in collector.spans]
        # A caller's unsampled context is continued and not exported; its tracestate passes on.
        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
        assert get(first.port, "/unsampled", headers={"traceparent": parent, "tracestate": "vendor=x"})[0] == 200
        time.sleep(0.5)
    finally:
        upstream.close()
        collector.close()

    assert ("/v1/traces", "application/x-protobuf") in collector.http_requests, "the second proxy exports over HTTP"
    by_service = {"svc-a": {}, "svc-b": {}}
    for resource, scope, span in collector.spans:
        assert scope == "envoy" and resource["telemetry.sdk.name"] == "envoy"
        by_service[resource["service.name"]][attributes(span)["http.url"].rsplit("/", 1)[1]] = span
    assert sorted(by_service["svc-a"]) == sorted(by_service["svc-b"]) == [str(i) for i in range(5)]
    for key, a in by_service["svc-a"].items():
        b = by_service["svc-b"][key]
        assert len(a.trace_id) == 16 and b.trace_id == a.trace_id, "one trace across both proxies"
        assert a.parent_span_id == b"", "the first proxy starts the trace"
        assert b.parent_span_id == a.span_id and b.span_id != a.span_id, "the second proxy's span is a child"
        assert a.name == b.name == "ingress"
        assert a.kind == b.kind == 2  # SPAN_KIND_SERVER
        assert a.flags == 0x101 and b.flags == 0x301, "sampled; the second proxy's parent is remote"
        attrs_a, attrs_b = attributes(a), attributes(b)
        assert attrs_a["guid:x-request-id"] == attrs_b["guid:x-request-id"]
        assert attrs_a["http.status_code"] == "200" and attrs_a["upstream_cluster"] == "next"
        assert attrs_a["node_id"] == "node-a" and attrs_b["node_id"] == "node-b"
        assert attrs_a["component"] == "proxy" and attrs_a["http.method"] == "GET"
        # meshproxy's spans carry Envoy's attributes, in Envoy's order.
        assert [kv.key for kv in a.attributes] == [kv.key for kv in b.attributes]
        assert a.end_time_unix_nano > a.start_time_unix_nano
    assert "unsampled" not in by_service["svc-a"] and "unsampled" not in by_service["svc-b"]

    sent = {line.split()[1]: dict((n.lower(), v) for n, v in headers) for line, headers, _ in upstream.requests}
    traced = sent["/traced/0"]
    b_span = by_service["svc-b"]["0"]
    assert traced["traceparent"] == f"00-{b_span.trace_id.hex()}-{b_span.span_id.hex()}-01"
    unsampled = sent["/unsampled"]
    version, trace_id, span_id, flags = unsampled["traceparent"].split("-")
    assert (version, trace_id, flags) == ("00", "0af7651916cd43dd8448eb211c80319c", "00")
    assert span_id != "b7ad6b7169203331", "each proxy adds a span of its own"
    assert unsampled["tracestate"] == "vendor=x"
