"""Retry policy options through Envoy 1.40 and meshproxy alike: retriable_request_headers (no retry for a request
that matches none), retriable_headers with the retriable-headers condition (a 200 carrying the header is retried),
retry_host_predicate previous_hosts (a retry goes to a host not yet tried), and a request body over the listener's
per_connection_buffer_limit_bytes, which is not kept for a retry."""
import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap, post, static_cluster
from loopback_servers import KeepAliveResponder
from scripted_upstream import ScriptedUpstream

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


def backend():
    """/fail answers 503; /flag answers 200 with `x-upstream-retry: yes`."""
    return ScriptedUpstream(lambda path: (503, [], b"") if path == "/fail"
                            else (200, [("x-upstream-retry", "yes")] if path == "/flag" else [], b""))


ROUTE = """            - match: { prefix: / }
              route:
                cluster: app
                retry_policy:
                  retry_on: 5xx,retriable-headers
                  num_retries: 2
                  retry_back_off: { base_interval: 0.001s, max_interval: 0.002s }
                  retriable_headers: [{ name: x-upstream-retry, string_match: { exact: "yes" } }]
                  retriable_request_headers: [{ name: x-retry-ok, present_match: true }]
                  retry_host_predicate:
                  - name: envoy.retry_host_predicates.previous_hosts
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate }
                  host_selection_retry_max_attempts: 5
"""


@pytest.mark.parametrize("binary,name", PROXIES)
def test_retry_options(launch, binary, name):
    a, b = backend(), backend()
    cluster = f"""  - name: app
    type: STATIC
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {a.port} }} }} }}
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {b.port} }} }} }}
"""
    try:
        proxy = launch(binary, lambda listener, admin: http_bootstrap(listener, admin, ROUTE, [cluster]), f"retry-options-{name}")

        def total(path):
            return a.counts.get(path, 0) + b.counts.get(path, 0)

        # A request without x-retry-ok is never retried.
        assert proxy.get("/fail")[0] == 503
        assert total("/fail") == 1
        # With it: two retries, the first one to the other host.
        a.counts.clear()
        b.counts.clear()
        assert proxy.get("/fail", headers={"x-retry-ok": "1"})[0] == 503
        assert total("/fail") == 3
        assert a.counts.get("/fail", 0) >= 1 and b.counts.get("/fail", 0) >= 1
        # A 200 carrying the retriable header is retried too.
        status, headers, _ = proxy.get("/flag", headers={"x-retry-ok": "1"})
        assert status == 200
        assert total("/flag") == 3
        stats = proxy.stats("cluster.app.upstream_rq_retry")
        assert stats["cluster.app.upstream_rq_retry"] == "4"
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_rate_limited_retry_back_off_waits_as_the_upstream_asks(launch, binary, name):
    """rate_limited_retry_back_off: a 429 with Retry-After: 1 is retried after about a second, not
    after the exponential back-off; a reset header asking for more than max_interval is not used."""
    import time
    from conftest import get

    def respond(path):
        if path.startswith("/throttled") and upstream.counts[path] == 1:
            return 429, [("retry-after", "1")], b""
        if path.startswith("/too-long") and upstream.counts[path] == 1:
            return 429, [("retry-after", "60")], b""
        return 200, [], b"ok"
    upstream = ScriptedUpstream(respond)
    route = """            - match: { prefix: / }
              route:
                cluster: app
                retry_policy:
                  retry_on: retriable-status-codes
                  retriable_status_codes: [429]
                  num_retries: 1
                  retry_back_off: { base_interval: 0.001s, max_interval: 0.002s }
                  rate_limited_retry_back_off:
                    reset_headers: [{ name: Retry-After, format: SECONDS }]
                    max_interval: 5s
"""
    cluster = f"""  - name: app
    type: STATIC
    load_assignment:
      cluster_name: app
      endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream.port} }} }} }} }}] }}]
"""
    try:
        proxy = launch(binary, lambda listener, admin: http_bootstrap(listener, admin, route, [cluster]), f"retry-after-{name}")
        started = time.monotonic()
        assert get(proxy.port, "/throttled")[0] == 200
        waited = time.monotonic() - started
        assert 0.95 <= waited < 2.5, waited
        started = time.monotonic()
        assert get(proxy.port, "/too-long")[0] == 200
        assert time.monotonic() - started < 0.5, "60 s is over max_interval: the exponential back-off applies"
        stats = proxy.stats("cluster.app.upstream_rq_retry_backoff")
        assert stats["cluster.app.upstream_rq_retry_backoff_ratelimited"] == "1"
        assert stats["cluster.app.upstream_rq_retry_backoff_exponential"] == "1"
    finally:
        upstream.close()


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_a_body_over_the_listeners_buffer_limit_is_not_retried(binary, name, launch):
    failing = KeepAliveResponder(status=503)
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, "            - match: { prefix: / }\n"
                  "              route: { cluster: up, retry_policy: { retry_on: 5xx, num_retries: 2 } }\n",
            [static_cluster("up", failing.port)]).replace(
                "    filter_chains:", "    per_connection_buffer_limit_bytes: 1024\n    filter_chains:", 1), f"buffer-limit-{name}")
        assert post(proxy.port, "/", body=b"x" * 100)[0] == 503
        assert failing.count == 3, "a small body is kept and retried"
        assert post(proxy.port, "/", body=b"x" * 4096)[0] == 503
        assert failing.count == 4, "a body over the limit goes once"
        stats = proxy.stats("cluster.up.")
        assert stats["cluster.up.retry_or_shadow_abandoned"] == "1"
        assert stats["cluster.up.upstream_rq_retry"] == "2"
    finally:
        failing.close()
