"""EDS priorities and health_status, through Envoy 1.40 and meshproxy alike: a priority level loses
load to the next as its hosts turn unhealthy (health times the overprovisioning factor), an
UNHEALTHY host gets nothing, and /clusters shows priorities, localities and failed_eds_health."""
import http.client
import json

import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap
from loopback_servers import KeepAliveResponder

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


def send(port, total):
    """`total` GETs on one keep-alive connection, each answered 200."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(total):
            connection.request("GET", f"/n/{i}")
            response = connection.getresponse()
            response.read()
            assert response.status == 200
    finally:
        connection.close()


def cluster(a, b, c, overprovisioning=None):
    policy = f"      policy: {{ overprovisioning_factor: {overprovisioning} }}\n" if overprovisioning else ""
    return f"""  - name: tiered
    type: STATIC
    load_assignment:
      cluster_name: tiered
{policy}      endpoints:
      - locality: {{ region: eu, zone: eu-1a }}
        lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {a} }} }} }}
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {b} }} }} }}
          health_status: UNHEALTHY
      - priority: 1
        locality: {{ region: us, zone: us-1b }}
        lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {c} }} }} }}
"""


@pytest.mark.parametrize("binary,name", PROXIES)
@pytest.mark.parametrize("overprovisioning,expected_p0", [(None, 0.70), (100, 0.50)])
def test_priority_load_follows_health(binary, name, overprovisioning, expected_p0, launch):
    upstreams = [KeepAliveResponder() for _ in range(3)]
    try:
        a, b, c = (u.port for u in upstreams)
        proxy = launch(binary, lambda l, adm: http_bootstrap(
            l, adm, "            - { match: { prefix: / }, route: { cluster: tiered } }\n",
            [cluster(a, b, c, overprovisioning)]), f"prio-{name}-{overprovisioning}")
        total = 400
        send(proxy.port, total)
        counts = [u.count for u in upstreams]
        assert counts[1] == 0, "the UNHEALTHY host gets nothing"
        # P0 is half healthy: its health is 50 % times the overprovisioning factor.
        assert abs(counts[0] / total - expected_p0) < 0.08, counts
        assert counts[0] + counts[2] == total
        _, text = proxy.admin_get("/clusters")
        lines = set(text.splitlines())
        assert f"tiered::127.0.0.1:{b}::health_flags::/failed_eds_health" in lines
        assert {f"tiered::127.0.0.1:{c}::priority::1", f"tiered::127.0.0.1:{c}::zone::us-1b",
                f"tiered::127.0.0.1:{a}::region::eu", f"tiered::127.0.0.1:{a}::priority::0"} <= lines
        _, text = proxy.admin_get("/clusters?format=json")
        hosts = {h["address"]["socket_address"]["port_value"]: h
                 for h in json.loads(text)["cluster_statuses"][0]["host_statuses"]}
        assert hosts[b]["health_status"]["eds_health_status"] == "UNHEALTHY"
        assert hosts[c]["priority"] == 1 and "priority" not in hosts[a], "proto3 JSON leaves out priority 0"
        assert hosts[c]["locality"] == {"region": "us", "zone": "us-1b"}
        assert "hostname" not in hosts[a]
    finally:
        for upstream in upstreams:
            upstream.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_locality_weighted_balancing(binary, name, launch):
    """common_lb_config.locality_weighted_lb_config: localities share traffic by load_balancing_weight (1:3),
    and a locality without a weight gets none."""
    upstreams = [KeepAliveResponder() for _ in range(3)]
    light, heavy, unweighted = (u.port for u in upstreams)

    def endpoint(port):
        return f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }}\n"
    cluster_text = ("  - name: tiered\n    type: STATIC\n    common_lb_config: { locality_weighted_lb_config: {} }\n"
                    "    load_assignment:\n      cluster_name: tiered\n      endpoints:\n"
                    f"      - locality: {{ zone: a }}\n        load_balancing_weight: 1\n        lb_endpoints:\n{endpoint(light)}"
                    f"      - locality: {{ zone: b }}\n        load_balancing_weight: 3\n        lb_endpoints:\n{endpoint(heavy)}"
                    f"      - locality: {{ zone: c }}\n        lb_endpoints:\n{endpoint(unweighted)}")
    try:
        proxy = launch(binary, lambda l, adm: http_bootstrap(
            l, adm, "            - { match: { prefix: / }, route: { cluster: tiered } }\n", [cluster_text]),
            f"locality-{name}")
        total = 400
        send(proxy.port, total)
        counts = [u.count for u in upstreams]
        assert counts[2] == 0, counts
        assert abs(counts[1] / total - 0.75) < 0.08, counts
    finally:
        for upstream in upstreams:
            upstream.close()
