"""Route actions through Envoy 1.40 and meshproxy alike: cluster_header (present, missing, unknown),
regex_rewrite with capture groups, host_rewrite_header, host_rewrite_literal, and request headers added
with each append_action and removed; what reaches the upstream is compared."""
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
- match: { prefix: /literal }
  route: { cluster: a, host_rewrite_literal: literal.example }
  request_headers_to_remove: [x-secret]
  request_headers_to_add:
  - { header: { key: x-append, value: added }, append_action: APPEND_IF_EXISTS_OR_ADD }
  - { header: { key: x-if-absent, value: added }, append_action: ADD_IF_ABSENT }
  - { header: { key: x-overwrite, value: added }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }
  - { header: { key: x-only-existing, value: added }, append_action: OVERWRITE_IF_EXISTS }
  - { header: { key: x-only-missing, value: added }, append_action: OVERWRITE_IF_EXISTS }
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
        sent = {"x-append": "mine", "x-if-absent": "mine", "x-overwrite": "mine", "x-only-existing": "mine",
                "x-secret": "hidden"}
        assert get(proxy.port, "/literal", headers=sent)[0] == 200
        literal = sorted((k.lower(), v) for k, v in a.requests[-1][1] if k.lower() in ("host", *sent, "x-only-missing"))
    finally:
        a.close()
        b.close()
    assert literal == sorted([("host", "literal.example"), ("x-append", "mine"), ("x-append", "added"),
                              ("x-if-absent", "mine"), ("x-only-existing", "added"), ("x-overwrite", "added")])
    # Envoy answers a missing or unknown cluster_header cluster with 503 (no_cluster).
    assert (missing, unknown) == (503, 503)
    assert proxy.stats("no_cluster")["http.ingress_http.no_cluster"] == "2"
