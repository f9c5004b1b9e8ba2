"""Route match conditions through Envoy 1.40 and meshproxy alike: query parameters, header range and
ignore_case string matches, grpc, and runtime_fraction at 0 % and 100 %. Each route answers with its own
direct response, so the body (for gRPC requests, the grpc-message) names the route that matched."""
import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap, http_request

ROUTES = """\
- match: { prefix: /, runtime_fraction: { default_value: { numerator: 0 }, runtime_key: never } }
  direct_response: { status: 200, body: { inline_string: never } }
- match: { prefix: /q, query_parameters: [{ name: debug, present_match: true }, { name: v, string_match: { exact: "2" } }] }
  direct_response: { status: 200, body: { inline_string: query } }
- match: { prefix: /h, headers: [{ name: x-version, range_match: { start: 10, end: 20 } }] }
  direct_response: { status: 200, body: { inline_string: range } }
- match: { prefix: /h, headers: [{ name: x-env, string_match: { prefix: prod, ignore_case: true } }] }
  direct_response: { status: 200, body: { inline_string: caseless } }
- match: { prefix: /, grpc: {} }
  direct_response: { status: 200, body: { inline_string: grpc } }
- match: { prefix: /, runtime_fraction: { default_value: { numerator: 100 }, runtime_key: always } }
  direct_response: { status: 200, body: { inline_string: fallback } }
"""

CASES = [
    ("/q?v=2&debug", {}, "query"),
    ("/q?debug&v=3", {}, "fallback"),
    ("/q?v=2", {}, "fallback"),
    ("/h", {"x-version": "15"}, "range"),
    ("/h", {"x-version": "20"}, "fallback"),
    ("/h", {"x-env": "PRODUCTION"}, "caseless"),
    ("/h", {"x-env": "staging"}, "fallback"),
    ("/svc.Method", {"content-type": "application/grpc+proto"}, "grpc"),
    ("/svc.Method", {"content-type": "application/json"}, "fallback"),
]


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_match_conditions(binary, name, launch):
    routes = "".join("            " + line + "\n" for line in ROUTES.splitlines())
    proxy = launch(binary, lambda l, a: http_bootstrap(l, a, routes, []), f"matching-{name}")
    got = []
    for path, headers, _ in CASES:
        _, response_headers, body = http_request(proxy.port, "GET", path, headers=headers)
        # A gRPC request gets the direct response as gRPC: its body text is the grpc-message.
        got.append(body.decode() or dict((k.lower(), v) for k, v in response_headers).get("grpc-message", ""))
    assert got == [expected for _, _, expected in CASES]
