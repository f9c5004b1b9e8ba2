"""Zone-aware routing through Envoy 1.40 and meshproxy alike: with cluster_manager.local_cluster_name and the
node's zone, a proxy in zone z1 whose peers are half in z1 sends the local zone as much as its share of upstream
hosts allows, and the rest to the zone with spare capacity; with enough local hosts, everything stays local."""
import http.client

import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap
from loopback_servers import KeepAliveResponder

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


def locality(zone, ports):
    endpoints = ", ".join(f"{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}"
                          for port in ports)
    return f"{{ locality: {{ zone: {zone} }}, lb_endpoints: [{endpoints}] }}"


def config(upstream_zones, local_zones=(("z1", [1]), ("z2", [2]))):
    upstream = ", ".join(locality(zone, ports) for zone, ports in upstream_zones)
    local = ", ".join(locality(zone, ports) for zone, ports in local_zones)
    clusters = [f"  - name: up\n    type: STATIC\n    load_assignment: {{ cluster_name: up, endpoints: [{upstream}] }}\n",
                f"  - name: peers\n    type: STATIC\n    load_assignment: {{ cluster_name: peers, endpoints: [{local}] }}\n"]

    def make(listener, admin):
        text = http_bootstrap(listener, admin, "            - match: { prefix: / }\n              route: { cluster: up }\n",
                              clusters)
        return ("node: { id: zoned, cluster: client, locality: { zone: z1 } }\n"
                "cluster_manager: { local_cluster_name: peers }\n" + text)
    return make


def spread(proxy, upstreams, count):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        for _ in range(count):
            conn.request("GET", "/")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
    finally:
        conn.close()
    return [upstream.count for upstream in upstreams]


@pytest.mark.parametrize("binary,name", PROXIES)
def test_spillover_follows_the_residual_capacity(binary, name, launch):
    upstreams = [KeepAliveResponder() for _ in range(6)]
    try:
        ports = [u.port for u in upstreams]
        # z1 has 1 of 6 upstream hosts (16.7 %) but half the proxies: a third of z1's requests stay local
        # (16.7 / 50), the rest go to z2, the only zone with spare capacity.
        proxy = launch(binary, config([("z1", ports[:1]), ("z2", ports[1:])]), f"zone-spill-{name}")
        counts = spread(proxy, upstreams, 600)
        assert 150 <= counts[0] <= 250, counts
        assert sum(counts[1:]) == 600 - counts[0]
        stats = proxy.stats("cluster.up.lb_zone")
        sampled = int(stats["cluster.up.lb_zone_routing_sampled"])
        cross = int(stats["cluster.up.lb_zone_routing_cross_zone"])
        assert sampled + cross == 600 and sampled == counts[0]
    finally:
        for upstream in upstreams:
            upstream.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_enough_local_hosts_keep_all_traffic_local(binary, name, launch):
    upstreams = [KeepAliveResponder() for _ in range(6)]
    try:
        ports = [u.port for u in upstreams]
        proxy = launch(binary, config([("z1", ports[:3]), ("z2", ports[3:])]), f"zone-direct-{name}")
        counts = spread(proxy, upstreams, 60)
        assert sum(counts[:3]) == 60 and all(counts[:3]), counts
        assert proxy.stats("cluster.up.lb_zone")["cluster.up.lb_zone_routing_all_directly"] == "60"
    finally:
        for upstream in upstreams:
            upstream.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_small_clusters_are_not_zone_routed(binary, name, launch):
    upstreams = [KeepAliveResponder() for _ in range(4)]
    try:
        ports = [u.port for u in upstreams]
        proxy = launch(binary, config([("z1", ports[:2]), ("z2", ports[2:])]), f"zone-small-{name}")
        counts = spread(proxy, upstreams, 40)
        assert all(counts), "under min_cluster_size (6) all hosts share the traffic"
        stats = proxy.stats("cluster.up.lb_zone")
        assert stats["cluster.up.lb_zone_cluster_too_small"] != "0"
        assert stats["cluster.up.lb_zone_routing_all_directly"] == "0"
    finally:
        for upstream in upstreams:
            upstream.close()
