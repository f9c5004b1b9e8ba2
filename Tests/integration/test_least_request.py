"""LEAST_REQUEST over hosts of unequal weight, through Envoy 1.40 and meshproxy alike: idle, requests
follow the weights; while the heavier host holds requests in flight, active_request_bias steers new
requests away from it (and a bias of 0 does not)."""
import threading
import time

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap
from loopback_servers import KeepAliveResponder
from rawupstream import RawUpstream


def config(light_port, heavy_port, bias=None):
    endpoint = ("{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }},"
                " load_balancing_weight: {} }}")
    options = f"    least_request_lb_config: {{ active_request_bias: {{ default_value: {bias}, runtime_key: lr.bias }} }}\n" \
        if bias is not None else ""
    cluster = f"""  - name: weighted
    type: STATIC
    lb_policy: LEAST_REQUEST
{options}    load_assignment:
      cluster_name: weighted
      endpoints: [{{ lb_endpoints: [{endpoint.format(light_port, 1)}, {endpoint.format(heavy_port, 3)}] }}]
"""
    routes = "            - { match: { prefix: / }, route: { cluster: weighted, timeout: 10s } }\n"
    return lambda l, a: http_bootstrap(l, a, routes, [cluster])


@pytest.fixture
def hosts():
    light, heavy = KeepAliveResponder(), RawUpstream()
    yield light, heavy
    light.close()
    heavy.close()


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_idle_requests_follow_the_weights(binary, name, hosts, launch):
    light, heavy = hosts
    proxy = launch(binary, config(light.port, heavy.port), f"lr-weights-{name}")
    for _ in range(80):
        assert get(proxy.port, "/")[0] == 200
    assert abs(len(heavy.requests) - 60) <= 3
    assert light.count + len(heavy.requests) == 80


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
@pytest.mark.parametrize("bias,heavy_share", [(None, (0.1, 0.45)), (0, (0.65, 0.85))], ids=["bias-1", "bias-0"])
def test_active_requests_steer_away_from_a_busy_host(binary, name, bias, heavy_share, hosts, launch):
    light, heavy = hosts
    proxy = launch(binary, config(light.port, heavy.port, bias), f"lr-bias-{name}-{bias}")
    # Requests that the heavy host holds for two seconds; the light one answers at once.
    slow = [threading.Thread(target=get, args=(proxy.port, "/slow?ms=2000")) for _ in range(12)]
    for thread in slow:
        thread.start()
    deadline = time.monotonic() + 5
    while light.count + len(heavy.requests) < 12:
        assert time.monotonic() < deadline, "the slow requests never arrived"
        time.sleep(0.02)
    busy = len(heavy.requests)
    assert busy >= 4, "the heavy host holds requests in flight"
    for _ in range(40):
        assert get(proxy.port, "/")[0] == 200
    share = (len(heavy.requests) - busy) / 40
    for thread in slow:
        thread.join(timeout=10)
    low, high = heavy_share
    assert low <= share <= high, f"{share:.2f} of requests went to the busy heavy host"
