"""%...% operators in request_headers_to_add and response_headers_to_add, through Envoy 1.40 and
meshproxy alike: what the upstream and the client receive."""
import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from rawupstream import RawUpstream

ROUTES = """\
- match: { prefix: / }
  route: { cluster: up }
  request_headers_to_add:
  - header: { key: x-client, value: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%" }
  - header: { key: x-proto, value: "%PROTOCOL%" }
  - header: { key: x-agent, value: "agent=%REQ(USER-AGENT)%" }
  - header: { key: x-missing, value: "%REQ(X-NOT-SENT)%" }
  - header: { key: x-literal, value: "100%%" }
  response_headers_to_add:
  - header: { key: x-code, value: "%RESPONSE_CODE%" }
  - header: { key: x-cluster, value: "%UPSTREAM_CLUSTER%" }
"""


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_header_formatters(binary, name, launch):
    upstream = RawUpstream()
    try:
        routes = "".join("            " + line + "\n" for line in ROUTES.splitlines())
        proxy = launch(binary, lambda l, a: http_bootstrap(l, a, routes, [static_cluster("up", upstream.port)]),
                       f"formatters-{name}")
        status, headers, _ = get(proxy.port, "/f", headers={"User-Agent": "tester"})
    finally:
        upstream.close()
    assert status == 200
    sent = {k.lower(): v for k, v in upstream.requests[-1][1]}
    assert (sent["x-client"], sent["x-proto"], sent["x-agent"], sent["x-literal"]) == \
        ("127.0.0.1", "HTTP/1.1", "agent=tester", "100%")
    assert "x-missing" not in sent, "an empty value adds no header"
    received = {k.lower(): v for k, v in headers}
    assert (received["x-code"], received["x-cluster"]) == ("200", "up")
