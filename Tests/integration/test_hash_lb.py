"""RING_HASH and MAGLEV clusters with hash_policy, through Envoy 1.40 and meshproxy alike: requests
with the same key stick to one host, different keys spread over the hosts."""
import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap
from rawupstream import RawUpstream


def config(ports, lb_policy):
    endpoint = "{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }}"
    cluster = f"""  - name: hashed
    type: STATIC
    lb_policy: {lb_policy}
    load_assignment:
      cluster_name: hashed
      endpoints: [{{ lb_endpoints: [{", ".join(endpoint.format(p) for p in ports)}] }}]
"""
    routes = """            - match: { prefix: / }
              route:
                cluster: hashed
                hash_policy: [{ header: { header_name: x-user } }, { query_parameter: { name: user } }]
"""
    return lambda l, a: http_bootstrap(l, a, routes, [cluster])


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
@pytest.mark.parametrize("lb_policy", ["RING_HASH", "MAGLEV"])
def test_same_key_same_host(binary, name, lb_policy, launch):
    upstreams = [RawUpstream() for _ in range(3)]
    try:
        proxy = launch(binary, config([u.port for u in upstreams], lb_policy), f"hash-{lb_policy}-{name}")

        def served(**kwargs):
            before = [len(u.requests) for u in upstreams]
            assert get(proxy.port, "/h" + kwargs.pop("suffix", ""), **kwargs)[0] == 200
            return next(i for i, u in enumerate(upstreams) if len(u.requests) > before[i])

        for user in ("alice", "bob", "carol", "dave"):
            hosts = {served(headers={"x-user": user}) for _ in range(6)}
            assert len(hosts) == 1, f"{user} moved between hosts {hosts}"
        by_query = {served(suffix="?user=erin") for _ in range(6)}
        assert len(by_query) == 1
        keys = {served(headers={"x-user": f"user-{i}"}) for i in range(40)}
        assert len(keys) == 3, "forty keys reach every host"
    finally:
        for upstream in upstreams:
            upstream.close()
