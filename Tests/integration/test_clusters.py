"""Cluster discovery types on real sockets: STRICT_DNS resolving a name, weighted STATIC hosts."""
import json

from conftest import MESHPROXY, seed_config
from rawupstream import RawUpstream


def test_strict_dns_resolves_names_and_rewrites_host(httpbin, launch):
    def config(listener, admin):
        text = seed_config(httpbin, listener, admin, upstream_host="localhost")
        return text.replace("type: LOGICAL_DNS", "type: STRICT_DNS")
    proxy = launch(MESHPROXY, config, "strict-dns")
    status, _, body = proxy.get("/headers")
    assert status == 200
    assert json.loads(body)["headers"]["Host"] == "localhost"
    _, clusters = proxy.admin_get("/clusters")
    assert f"httpbin_service::127.0.0.1:{httpbin}::hostname::localhost" in clusters.splitlines()
    stats = proxy.stats()
    assert stats["cluster.httpbin_service.membership_total"] == "1"
    assert int(stats["cluster.httpbin_service.update_success"]) >= 1


def test_unresolvable_name_gives_no_healthy_upstream(launch):
    config = lambda l, a: seed_config(1, l, a, upstream_host="name.invalid")
    proxy = launch(MESHPROXY, config, "dns-fail")
    status, _, body = proxy.get("/")
    assert status == 503 and body == b"no healthy upstream"
    assert proxy.stats()["cluster.httpbin_service.upstream_cx_none_healthy"] == "1"


def test_weighted_static_hosts_share_traffic(launch):
    heavy, light = RawUpstream(), RawUpstream()
    try:
        def config(listener, admin):
            text = seed_config(heavy.port, listener, admin).replace("type: LOGICAL_DNS", "type: STATIC")
            endpoint = text[text.index("        - endpoint:"):]
            weighted = endpoint.replace("        - endpoint:", "        - load_balancing_weight: 3\n          endpoint:")
            second = endpoint.replace(f"port_value: {heavy.port}", f"port_value: {light.port}")
            return text.replace(endpoint, weighted + second)
        proxy = launch(MESHPROXY, config, "weighted")
        for _ in range(40):
            assert proxy.get("/x")[0] == 200
        assert (len(heavy.requests), len(light.requests)) == (30, 10)
    finally:
        heavy.close()
        light.close()
