"""request_mirror_policies through Envoy 1.40 and meshproxy alike: the shadow cluster gets a copy of
each request (body included) with the host suffixed -shadow and marked internal; the main response is
unaffected, a 0 % runtime_fraction mirrors nothing, and a failing shadow fails nothing."""
import time

import pytest

from conftest import ENVOY, MESHPROXY, free_port, get, http_bootstrap, post, static_cluster
from rawupstream import RawUpstream

ROUTES = """\
- match: { prefix: /never }
  route: { cluster: main, request_mirror_policies: [{ cluster: shadow, runtime_fraction: { default_value: { numerator: 0 } } }] }
- match: { prefix: /dead }
  route: { cluster: main, request_mirror_policies: [{ cluster: dead }] }
- match: { prefix: / }
  route: { cluster: main, request_mirror_policies: [{ cluster: shadow }] }
"""


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_shadow_copies(binary, name, launch):
    main, shadow = RawUpstream(), RawUpstream()
    try:
        routes = "".join("            " + line + "\n" for line in ROUTES.splitlines())
        clusters = [static_cluster("main", main.port), static_cluster("shadow", shadow.port),
                    static_cluster("dead", free_port())]
        proxy = launch(binary, lambda l, a: http_bootstrap(l, a, routes, clusters), f"mirror-{name}")
        assert get(proxy.port, "/m1", headers={"x-test": "1"})[0] == 200
        assert post(proxy.port, "/m2", body=b"hello")[0] == 200
        assert get(proxy.port, "/never")[0] == 200
        assert get(proxy.port, "/dead")[0] == 200
        deadline = time.monotonic() + 5
        while len(shadow.requests) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        main.close()
        shadow.close()
    assert [line for line, _, _ in shadow.requests] == ["GET /m1 HTTP/1.1", "POST /m2 HTTP/1.1"]
    assert len(main.requests) == 4
    for (_, shadow_headers, shadow_length), (_, main_headers, main_length) in zip(shadow.requests, main.requests):
        copied, original = dict((k.lower(), v) for k, v in shadow_headers), dict((k.lower(), v) for k, v in main_headers)
        assert copied["host"] == original["host"].replace(":", "-shadow:")
        assert copied["x-request-id"] == original["x-request-id"]
        assert copied["x-envoy-internal"] == "true" and "x-forwarded-for" in copied
        assert shadow_length == main_length
        assert [n.lower() for n, _ in shadow_headers][0] == "host"
    assert proxy.stats("cluster.shadow.upstream_rq_200")["cluster.shadow.upstream_rq_200"] == "2"
