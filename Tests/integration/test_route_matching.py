"""Route match conditions through Envoy 1.40 and meshproxy alike: path_separated_prefix, case_sensitive,
safe_regex paths, query parameters, header range, suffix, contains and ignore_case string matches,
invert_match, grpc, and runtime_fraction at 0 % and 100 %. Each route answers with its own
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
- match: { path_separated_prefix: /sep }
  direct_response: { status: 200, body: { inline_string: separated } }
- match: { prefix: /CaSe, case_sensitive: false }
  direct_response: { status: 200, body: { inline_string: caseless-path } }
- match: { safe_regex: { regex: "/re/[0-9]+" } }
  direct_response: { status: 200, body: { inline_string: regex } }
- match: { prefix: /inv, headers: [{ name: x-block, present_match: true, invert_match: true }] }
  direct_response: { status: 200, body: { inline_string: inverted } }
- match: { prefix: /hs, headers: [{ name: x-s, string_match: { suffix: "-beta" } }, { name: x-c, string_match: { contains: mid } }] }
  direct_response: { status: 200, body: { inline_string: suffix-contains } }
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
    ("/sep", {}, "separated"),
    ("/sep/x", {}, "separated"),
    ("/sep?x=1", {}, "separated"),
    ("/sepx", {}, "fallback"),
    ("/case/a", {}, "caseless-path"),
    ("/CASE", {}, "caseless-path"),
    ("/re/123", {}, "regex"),
    ("/re/12a", {}, "fallback"),
    ("/re/123?q", {}, "regex"),
    ("/inv", {}, "inverted"),
    ("/inv", {"x-block": "1"}, "fallback"),
    ("/hs", {"x-s": "v-beta", "x-c": "amidb"}, "suffix-contains"),
    ("/hs", {"x-s": "v-beta"}, "fallback"),
    ("/hs", {"x-s": "v-alpha", "x-c": "mid"}, "fallback"),
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
