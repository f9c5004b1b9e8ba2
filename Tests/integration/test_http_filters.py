"""HTTP filters before the router, through Envoy 1.40 and meshproxy alike: envoy.filters.http.cors, envoy.filters.http.fault
(aborts and delays from a route's typed_per_filter_config, header-controlled faults, gRPC aborts) and
envoy.filters.http.local_ratelimit (a token bucket, Envoy's 429 and its stats)."""
import time

import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap, http_request, static_cluster

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]

FAULT = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
LIMIT = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"


def config(upstream_port):
    filters = f"""          http_filters:
          - name: envoy.filters.http.fault
            typed_config:
              "@type": {FAULT}
              abort: {{ header_abort: {{}}, percentage: {{ numerator: 100 }} }}
              headers: [{{ name: x-chaos, present_match: true }}]
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": {LIMIT}
              stat_prefix: listener_limit
              token_bucket: {{ max_tokens: 3, tokens_per_fill: 3, fill_interval: 3600s }}
              filter_enabled: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
              filter_enforced: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
"""
    routes = f"""            - match: {{ prefix: /abort }}
              route: {{ cluster: up }}
              typed_per_filter_config:
                envoy.filters.http.fault:
                  "@type": {FAULT}
                  abort: {{ http_status: 418, percentage: {{ numerator: 100 }} }}
            - match: {{ prefix: /grpc-abort }}
              route: {{ cluster: up }}
              typed_per_filter_config:
                envoy.filters.http.fault:
                  "@type": {FAULT}
                  abort: {{ grpc_status: 14, percentage: {{ numerator: 100 }} }}
            - match: {{ prefix: /delay }}
              route: {{ cluster: up }}
              typed_per_filter_config:
                envoy.filters.http.fault:
                  "@type": {FAULT}
                  delay: {{ fixed_delay: 0.4s, percentage: {{ numerator: 100 }} }}
            - match: {{ prefix: /limited }}
              route: {{ cluster: up }}
              typed_per_filter_config:
                envoy.filters.http.local_ratelimit:
                  "@type": {LIMIT}
                  stat_prefix: route_limit
                  token_bucket: {{ max_tokens: 1, tokens_per_fill: 1, fill_interval: 3600s }}
                  filter_enabled: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
                  filter_enforced: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
            - match: {{ prefix: / }}
              route: {{ cluster: up }}
"""

    def make(listener, admin):
        text = http_bootstrap(listener, admin, routes, [static_cluster("up", upstream_port)])
        # The bootstrap's own router-only filter list gives way to these filters (the router stays last).
        return text.replace("          http_filters:\n", filters, 1)
    return make


@pytest.mark.parametrize("binary,name", PROXIES)
def test_faults_from_routes_and_headers(binary, name, raw, launch):
    proxy = launch(binary, config(raw.port), f"fault-{name}")
    status, headers, body = http_request(proxy.port, "GET", "/abort")
    assert (status, body) == (418, b"fault filter abort")
    status, headers, body = http_request(proxy.port, "POST", "/grpc-abort", body=b"",
                                         headers={"content-type": "application/grpc"})
    headers = dict(headers)
    assert status == 200 and headers.get("grpc-status") == "14" and headers.get("grpc-message") == "fault filter abort"
    # The listener-wide fault applies to requests that name a status in x-envoy-fault-abort-request.
    status, _, body = http_request(proxy.port, "GET", "/plain", headers={"x-chaos": "1", "x-envoy-fault-abort-request": "503"})
    assert (status, body) == (503, b"fault filter abort")
    started = time.monotonic()
    assert http_request(proxy.port, "GET", "/delay")[0] == 200
    assert time.monotonic() - started >= 0.35, "the fixed 0.4 s delay"
    stats = proxy.stats("ingress_http.fault.")
    assert stats["http.ingress_http.fault.aborts_injected"] == "3"
    assert stats["http.ingress_http.fault.delays_injected"] == "1"
    assert stats["http.ingress_http.fault.active_faults"] == "0"
    assert stats["http.ingress_http.fault.faults_overflow"] == "0"


@pytest.mark.parametrize("binary,name", PROXIES)
def test_local_rate_limits_per_listener_and_per_route(binary, name, raw, launch):
    proxy = launch(binary, config(raw.port), f"ratelimit-{name}")
    # The route's own bucket holds one token; the listener's bucket is not spent by it.
    assert http_request(proxy.port, "GET", "/limited")[0] == 200
    status, _, body = http_request(proxy.port, "GET", "/limited")
    assert (status, body) == (429, b"local_rate_limited")
    # The listener's bucket holds three.
    codes = [http_request(proxy.port, "GET", f"/open/{i}")[0] for i in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    listener = proxy.stats("listener_limit.http_local_rate_limit")
    assert {k.rsplit(".", 1)[1]: v for k, v in listener.items()} == {
        "enabled": "5", "enforced": "2", "ok": "3", "rate_limited": "2", "shadow_mode": "0"}
    route = proxy.stats("route_limit.http_local_rate_limit")
    assert route["route_limit.http_local_rate_limit.rate_limited"] == "1"
    assert route["route_limit.http_local_rate_limit.ok"] == "1"


def cors_config(upstream_port):
    policy = """              typed_per_filter_config:
                envoy.filters.http.cors:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy
                  allow_origin_string_match: [{ exact: "https://app.example" }, { suffix: ".trusted.example" }]
                  allow_methods: "GET, PUT"
                  allow_headers: "x-custom, content-type"
                  expose_headers: "x-exposed"
                  max_age: "600"
                  allow_credentials: true
"""
    filters = """          http_filters:
          - name: envoy.filters.http.cors
            typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors }
"""

    def make(listener, admin):
        text = http_bootstrap(listener, admin, "            - match: { prefix: / }\n              route: { cluster: up }\n",
                              [static_cluster("up", upstream_port)])
        text = text.replace("          http_filters:\n", filters, 1)
        # The policy belongs to the virtual host.
        return text.replace("              domains: [\"*\"]\n", "              domains: [\"*\"]\n" + policy, 1)
    return make


@pytest.mark.parametrize("binary,name", PROXIES)
def test_cors_answers_preflights_and_marks_responses(binary, name, raw, launch):
    proxy = launch(binary, cors_config(raw.port), f"cors-{name}")
    status, headers, _ = http_request(proxy.port, "OPTIONS", "/x", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "PUT"})
    headers = dict(headers)
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example"
    assert headers["access-control-allow-methods"] == "GET, PUT"
    assert headers["access-control-allow-headers"] == "x-custom, content-type"
    assert headers["access-control-max-age"] == "600"
    assert headers["access-control-allow-credentials"] == "true"
    assert raw.requests == [], "a preflight from an allowed origin is answered by the proxy"
    status, headers, _ = http_request(proxy.port, "GET", "/y", headers={"Origin": "https://a.trusted.example"})
    headers = dict(headers)
    assert status == 200 and headers["access-control-allow-origin"] == "https://a.trusted.example"
    assert headers["access-control-expose-headers"] == "x-exposed"
    status, headers, _ = http_request(proxy.port, "GET", "/z", headers={"Origin": "https://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in dict(headers)
    stats = proxy.stats("ingress_http.cors.")
    assert stats["http.ingress_http.cors.origin_valid"] == "2"
    assert stats["http.ingress_http.cors.origin_invalid"] == "1"
