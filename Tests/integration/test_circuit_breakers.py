"""Circuit breakers through Envoy 1.40 and meshproxy alike: max_requests, and max_connections with
max_pending_requests, against a slow upstream; overflow answers 503 with x-envoy-overloaded and
Envoy's body, and the overflow stats match."""
import threading

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
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
