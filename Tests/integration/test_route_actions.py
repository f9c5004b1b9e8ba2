"""Route actions through Envoy 1.40 and meshproxy alike: cluster_header (present, missing, unknown),
regex_rewrite with capture groups, host_rewrite_header; what reaches the upstream is compared."""
import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from rawupstream import RawUpstream

ROUTES = r"""- match: { prefix: /pick }
  route: { cluster_header: x-target }
- match: { safe_regex: { regex: "/rewrite/.*" } }
  route:
    cluster: a
    regex_rewrite: { pattern: { regex: "^/rewrite/(\\w+)/(\\d+)$" }, substitution: "/v2/\\2/\\1" }
- match: { prefix: /host }
  route: { cluster: a, host_rewrite_header: x-host }
"""


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_route_actions(binary, name, launch):
    a, b = RawUpstream(), RawUpstream()
    try:
        routes = "".join("            " + line + "\n" for line in ROUTES.splitlines())
        proxy = launch(binary, lambda l, p: http_bootstrap(l, p, routes, [static_cluster("a", a.port),
                                                                          static_cluster("b", b.port)]),
                       f"actions-{name}")
        assert get(proxy.port, "/pick", headers={"x-target": "b"})[0] == 200
        assert len(b.requests) == 1 and len(a.requests) == 0
        missing, unknown = get(proxy.port, "/pick")[0], get(proxy.port, "/pick", headers={"x-target": "nope"})[0]
        assert get(proxy.port, "/rewrite/items/42")[0] == 200
        assert a.requests[-1][0] == "GET /v2/42/items HTTP/1.1"
        assert get(proxy.port, "/host", headers={"x-host": "rewritten.example"})[0] == 200
        upstream_headers = {k.lower(): v for k, v in a.requests[-1][1]}
        assert upstream_headers["host"] == "rewritten.example"
        assert get(proxy.port, "/host")[0] == 200
        assert {k.lower(): v for k, v in a.requests[-1][1]}["host"] == f"127.0.0.1:{proxy.port}"
    finally:
        a.close()
        b.close()
    # Envoy answers a missing or unknown cluster_header cluster with 503 (no_cluster).
    assert (missing, unknown) == (503, 503)
    assert proxy.stats("no_cluster")["http.ingress_http.no_cluster"] == "2"
