"""Route features on real sockets: weighted clusters (canary splits), direct responses, header edits at
route, virtual host and route configuration level."""
import http.client

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from loopback_servers import KeepAliveResponder
from rawupstream import RawUpstream


def config(stable, canary):
    def make(listener, admin):
        return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: l
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          http_filters: [{{ name: envoy.filters.http.router }}]
          route_config:
            name: r
            response_headers_to_add: [{{ header: {{ key: x-served-by, value: meshproxy }} }}]
            virtual_hosts:
            - name: v
              domains: ["*"]
              request_headers_to_add: [{{ header: {{ key: x-vhost, value: "yes" }} }}]
              routes:
              - match: {{ prefix: /health }}
                direct_response: {{ status: 200, body: {{ inline_string: "healthy" }} }}
              - match: {{ prefix: /old/ }}
                redirect: {{ prefix_rewrite: /new/, response_code: FOUND }}
              - match: {{ prefix: /split }}
                route:
                  weighted_clusters:
                    clusters:
                    - {{ name: stable, weight: 75 }}
                    - {{ name: canary, weight: 25, request_headers_to_add: [{{ header: {{ key: x-canary, value: "1" }} }}] }}
              - match: {{ prefix: / }}
                route: {{ cluster: stable }}
                request_headers_to_remove: [x-secret]
                response_headers_to_remove: [content-type]
  clusters:
  - name: stable
    type: STATIC
    load_assignment: {{ cluster_name: stable, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {stable.port} }} }} }} }}] }}] }}
  - name: canary
    type: STATIC
    load_assignment: {{ cluster_name: canary, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {canary.port} }} }} }} }}] }}] }}
"""
    return make


def test_weighted_split_direct_response_and_header_edits(launch):
    stable, canary = RawUpstream(), RawUpstream()
    try:
        proxy = launch(MESHPROXY, config(stable, canary), "routing")
        status, headers, body = proxy.get("/health")
        assert (status, body) == (200, b"healthy")
        assert dict(headers)["x-served-by"] == "meshproxy"
        assert stable.requests == [] and canary.requests == []

        for _ in range(200):
            assert proxy.get("/split")[0] == 200
        assert 20 <= len(canary.requests) <= 90, f"25% of 200 expected, got {len(canary.requests)} on canary"
        assert len(stable.requests) + len(canary.requests) == 200
        assert all(dict(h).get("x-canary") == "1" for _, h, _ in canary.requests)
        assert all("x-canary" not in dict(h) for _, h, _ in stable.requests)

        status, headers, _ = proxy.get("/other", headers={"X-Secret": "s", "X-Keep": "k"})
        sent = dict(stable.requests[-1][1])
        assert "x-secret" not in sent and sent["x-keep"] == "k" and sent["x-vhost"] == "yes"
        names = {name for name, _ in headers}
        assert "content-type" not in names and dict(headers)["x-served-by"] == "meshproxy"
        assert proxy.stats()["http.ingress_http.rq_direct_response"] == "1"
        status, headers, _ = proxy.get("/old/page?q=1", headers={"Host": "site.example"})
        assert status == 302 and dict(headers)["location"] == "http://site.example/new/page?q=1"
    finally:
        stable.close()
        canary.close()


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_canary_split_of_ninety_to_ten(binary, name, launch):
    """A 90/10 weighted_clusters split over 2,000 requests on one keep-alive connection lands within ±3 %."""
    stable, canary = KeepAliveResponder(), KeepAliveResponder()
    routes = ("            - match: { prefix: / }\n"
              "              route: { weighted_clusters: { clusters: [{ name: stable, weight: 90 }, { name: canary, weight: 10 }] } }\n")
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, routes, [static_cluster("stable", stable.port), static_cluster("canary", canary.port)]),
            f"canary-{name}")
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        for _ in range(2000):
            connection.request("GET", "/split")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
        connection.close()
        assert stable.count + canary.count == 2000
        assert abs(canary.count - 200) <= 60, f"{canary.count} of 2,000 reached the canary"
    finally:
        stable.close()
        canary.close()
