"""Circuit breakers through Envoy 1.40 and meshproxy alike: max_requests, and max_connections with
max_pending_requests, against a slow upstream; overflow answers 503 with x-envoy-overloaded and
Envoy's body, and the overflow stats match; track_remaining's gauges and a retry_budget."""
import threading
import time

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from loopback_servers import KeepAliveResponder
from rawupstream import RawUpstream

OVERFLOW_BODY = b"upstream connect error or disconnect/reset before headers. reset reason: overflow"


def burst(proxy, count=4):
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(proxy.port, "/slow?ms=600"))) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return sorted(results, key=lambda result: result[0])


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
@pytest.mark.parametrize("thresholds,served,expected_stats", [
    ("max_requests: 1", 1, {"upstream_rq_active_overflow": "3"}),
    ("max_connections: 1, max_pending_requests: 1", 2,
     {"upstream_cx_overflow": "1", "upstream_rq_pending_overflow": "2", "circuit_breakers.default.cx_open": "1"}),
], ids=["max_requests", "max_connections"])
def test_overflow_matches_envoy(binary, name, thresholds, served, expected_stats, launch):
    upstream = RawUpstream()
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, "            - { match: { prefix: / }, route: { cluster: up } }\n",
            [static_cluster("up", upstream.port, extra=f"    circuit_breakers: {{ thresholds: [{{ {thresholds} }}] }}\n")]),
            f"cb-{name}")
        results = burst(proxy)
    finally:
        upstream.close()
    assert [status for status, _, _ in results] == [200] * served + [503] * (4 - served)
    for status, headers, body in results[served:]:
        assert dict((k.lower(), v) for k, v in headers)["x-envoy-overloaded"] == "true"
        assert body == OVERFLOW_BODY
    stats = proxy.stats("cluster.up.")
    assert {key: stats[f"cluster.up.{key}"] for key in expected_stats} == expected_stats


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_track_remaining_shows_what_is_left(binary, name, launch):
    upstream = RawUpstream()
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, "            - { match: { prefix: / }, route: { cluster: up } }\n",
            [static_cluster("up", upstream.port, extra=(
                "    circuit_breakers: { thresholds: [{ max_connections: 5, max_pending_requests: 6, max_requests: 7,"
                " max_retries: 2, track_remaining: true }] }\n"))]), f"cb-remaining-{name}")
        idle = {key: proxy.stats("circuit_breakers.default.remaining")[f"cluster.up.circuit_breakers.default.{key}"]
                for key in ("remaining_cx", "remaining_pending", "remaining_rq", "remaining_retries")}
        assert idle == {"remaining_cx": "5", "remaining_pending": "6", "remaining_rq": "7", "remaining_retries": "2"}
        in_flight = threading.Thread(target=lambda: get(proxy.port, "/slow?ms=800"))
        in_flight.start()
        try:
            deadline = time.monotonic() + 5
            while proxy.stats("upstream_rq_active").get("cluster.up.upstream_rq_active") != "1":
                assert time.monotonic() < deadline, "the request never became active"
                time.sleep(0.02)
            during = proxy.stats("circuit_breakers.default.remaining")
            assert during["cluster.up.circuit_breakers.default.remaining_rq"] == "6"
            assert during["cluster.up.circuit_breakers.default.remaining_cx"] == "4"
        finally:
            in_flight.join(timeout=10)
    finally:
        upstream.close()


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_retry_budget_replaces_max_retries(binary, name, launch):
    failing = KeepAliveResponder(status=503)
    try:
        # max_retries 0 would allow no retry at all; the budget's minimum concurrency allows them.
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, "            - { match: { prefix: / }, route: { cluster: up, retry_policy: { retry_on: 5xx, num_retries: 2 } } }\n",
            [static_cluster("up", failing.port, extra=(
                "    circuit_breakers: { thresholds: [{ max_retries: 0,"
                " retry_budget: { budget_percent: { value: 10 }, min_retry_concurrency: 2 } }] }\n"))]), f"cb-budget-{name}")
        assert get(proxy.port, "/")[0] == 503
        stats = proxy.stats("cluster.up.upstream_rq_retry")
        assert stats["cluster.up.upstream_rq_retry"] == "2"
        assert stats.get("cluster.up.upstream_rq_retry_overflow", "0") == "0"
        assert failing.count == 3
    finally:
        failing.close()


PRIORITY_ROUTES = ("            - { match: { prefix: /hi/ }, route: { cluster: up, priority: HIGH, prefix_rewrite: / } }\n"
                   "            - { match: { prefix: / }, route: { cluster: up } }\n")


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_high_priority_routes_have_their_own_limits(binary, name, launch):
    """A route with `priority: HIGH` is held to the HIGH thresholds, counted apart from DEFAULT's: with DEFAULT
    at one request and HIGH at two, a burst of four on each serves one and two."""
    upstream = RawUpstream()
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, PRIORITY_ROUTES,
            [static_cluster("up", upstream.port, extra=(
                "    circuit_breakers: { thresholds: [{ max_requests: 1 },"
                " { priority: HIGH, max_requests: 2, track_remaining: true }] }\n"))]), f"cb-high-{name}")
        results = {}
        threads = [threading.Thread(target=lambda key=key, path=path: results.__setitem__(key, get(proxy.port, path)))
                   for path in ("/slow?ms=700", "/hi/slow?ms=700") for key in [(path, i) for i in range(4)]]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 5
        while proxy.stats("upstream_rq_active").get("cluster.up.upstream_rq_active") != "3":
            assert time.monotonic() < deadline, "the served requests never became active"
            time.sleep(0.02)
        during = proxy.stats("circuit_breakers.")
        for thread in threads:
            thread.join(timeout=20)
    finally:
        upstream.close()
    default = sorted(status for (path, _), (status, _, _) in results.items() if not path.startswith("/hi"))
    high = sorted(status for (path, _), (status, _, _) in results.items() if path.startswith("/hi"))
    assert default == [200, 503, 503, 503]
    assert high == [200, 200, 503, 503]
    assert during["cluster.up.circuit_breakers.default.rq_open"] == "1"
    assert during["cluster.up.circuit_breakers.high.rq_open"] == "1"
    assert during["cluster.up.circuit_breakers.high.remaining_rq"] == "0"
    assert proxy.stats("cluster.up.upstream_rq_active_overflow")["cluster.up.upstream_rq_active_overflow"] == "5"
    after = proxy.stats("circuit_breakers.")
    assert after["cluster.up.circuit_breakers.high.rq_open"] == "0"
    assert after["cluster.up.circuit_breakers.high.remaining_rq"] == "2"
    clusters = proxy.admin_get("/clusters")[1].splitlines()
    assert "up::default_priority::max_requests::1" in clusters
    assert "up::high_priority::max_requests::2" in clusters
    assert "up::high_priority::max_retries::3" in clusters


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_high_priority_requests_use_their_own_connections(binary, name, launch):
    """max_connections is counted per priority, so with one connection allowed and no request allowed to
    wait, a DEFAULT and a HIGH request in flight together are both served, each over a connection of its own."""
    upstream = RawUpstream()
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, PRIORITY_ROUTES,
            [static_cluster("up", upstream.port, extra=(
                "    circuit_breakers: { thresholds: [{ max_connections: 1, max_pending_requests: 1 },"
                " { priority: HIGH, max_connections: 1, max_pending_requests: 1 }] }\n"))]), f"cb-high-cx-{name}")
        results = []
        threads = [threading.Thread(target=lambda path=path: results.append(get(proxy.port, path)))
                   for path in ("/slow?ms=500", "/hi/slow?ms=500")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert [status for status, _, _ in results] == [200, 200]
        assert upstream.connections == 2
        stats = proxy.stats("cluster.up.upstream_cx_")
        assert stats["cluster.up.upstream_cx_total"] == "2"
        assert stats.get("cluster.up.upstream_cx_overflow", "0") == "0"
    finally:
        upstream.close()
