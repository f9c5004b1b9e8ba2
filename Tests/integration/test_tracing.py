"""Zipkin tracing through two chained proxies to a loopback collector: B3 context carried upstream,
the trace decision marked in x-request-id, Envoy's span tags, and parent/child links across the
proxies (the second proxy with shared_span_context: false). The first proxy is meshproxy or Envoy 1.40."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from loopback_servers import read_body
from rawupstream import RawUpstream


class Collector:
    """A Zipkin v2 JSON collector: POST /api/v2/spans."""

    def __init__(self):
        self.spans = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = read_body(self)
                collector.spans.extend(json.loads(body))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def config(next_port, collector_port, shared=True):
    tracing = """          tracing:
            provider:
              name: envoy.tracers.zipkin
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.ZipkinConfig
                collector_cluster: zipkin
                collector_endpoint: /api/v2/spans
                collector_endpoint_version: HTTP_JSON
""" + ("" if shared else "                shared_span_context: false\n")

    def make(listener, admin):
        return http_bootstrap(listener, admin, "            - { match: { prefix: / }, route: { cluster: next } }\n",
                              [static_cluster("next", next_port), static_cluster("zipkin", collector_port)],
                              hcm_extra=tracing)
    return make


@pytest.mark.parametrize("first_binary,first_name", [(MESHPROXY, "meshproxy"), (ENVOY, "envoy")])
def test_spans_link_across_two_proxies(first_binary, first_name, launch):
    upstream, collector = RawUpstream(), Collector()
    try:
        second = launch(MESHPROXY, config(upstream.port, collector.port, shared=False), f"trace-b-{first_name}",
                        extra_args=("--service-cluster", "svc-b", "--service-node", "node-b"))
        first = launch(first_binary, config(second.port, collector.port), f"trace-a-{first_name}",
                       extra_args=("--service-cluster", "svc-a", "--service-node", "node-a"))
        for index in range(5):
            assert get(first.port, f"/traced/{index}", headers={"x-request-id": f"00000000-0000-4000-8000-00000000000{index}"})[0] == 200
        deadline = time.monotonic() + 15
        while len(collector.spans) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(collector.spans) == 10, collector.spans
    finally:
        upstream.close()
        collector.close()

    by_service = {"svc-a": [], "svc-b": []}
    for span in collector.spans:
        by_service[span["localEndpoint"]["serviceName"]].append(span)
    a_spans = {s["tags"]["http.url"].rsplit("/", 1)[1]: s for s in by_service["svc-a"]}
    b_spans = {s["tags"]["http.url"].rsplit("/", 1)[1]: s for s in by_service["svc-b"]}
    assert sorted(a_spans) == sorted(b_spans) == [str(i) for i in range(5)]
    for key, a in a_spans.items():
        b = b_spans[key]
        assert b["traceId"] == a["traceId"], "one trace across both proxies"
        assert "parentId" not in a, "the first proxy starts the trace"
        assert b["parentId"] == a["id"] and b["id"] != a["id"], "the second proxy's span is a child"
        assert a["kind"] == b["kind"] == "SERVER"
        assert a["tags"]["guid:x-request-id"] == b["tags"]["guid:x-request-id"]
        assert a["tags"]["guid:x-request-id"][14] == "9", "the trace decision is marked in the request id"
        assert a["tags"]["http.status_code"] == "200" and a["tags"]["upstream_cluster"] == "next"
        assert a["tags"]["node_id"] == "node-a" and b["tags"]["node_id"] == "node-b"
        assert a["tags"]["component"] == "proxy" and a["tags"]["http.method"] == "GET"
    # The upstream saw the second proxy's context.
    assert {name.lower() for name, _ in upstream.requests[-1][1]} >= {"x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled"}
