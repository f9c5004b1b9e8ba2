"""normalize_path and merge_slashes through Envoy 1.40 and meshproxy alike: the path the upstream receives for
dot segments, escaped dots and unreserved characters, backslashes and doubled slashes (escaped slashes and the
query untouched), and routing on the normalized path, so `/public/../admin` cannot slip past an `/admin` rule."""
import socket

import pytest

from conftest import ENVOY, MESHPROXY, http_bootstrap, static_cluster
from rawupstream import RawUpstream

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]
CASES = [
    (b"/a/../b", b"/b"), (b"/a/./b/", b"/a/b/"), (b"//a//b", b"/a/b"), (b"/a/%2e%2e/b", b"/b"), (b"/a/%2E/b", b"/a/b"),
    (b"/a%2fb", b"/a%2fb"), (b"/a/b/../../../c", b"/c"), (b"/a/b?x=/../y", b"/a/b?x=/../y"),
    (b"/%7euser/%41", b"/~user/A"), (b"/a/b/..", b"/a/"), (b"/./a", b"/a"), (b"/a\\b", b"/a/b"),
    (b"/a/%2e%2E%2fb", b"/a/..%2fb"), (b"/A%3a%3Bb", b"/A%3a%3Bb"),
]


def send(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + path + b" HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("binary,name", PROXIES)
def test_normalized_paths_route_and_reach_the_upstream(binary, name, launch):
    upstream = RawUpstream()
    routes = ("            - match: { prefix: /admin }\n"
              "              direct_response: { status: 403, body: { inline_string: denied } }\n"
              "            - match: { prefix: / }\n              route: { cluster: up }\n")
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, routes, [static_cluster("up", upstream.port)],
            hcm_extra="          normalize_path: true\n          merge_slashes: true\n"), f"normalize-{name}")
        for path, expected in CASES:
            before = len(upstream.requests)
            assert send(proxy.port, path).startswith(b"HTTP/1.1 200")
            assert len(upstream.requests) == before + 1
            assert upstream.requests[-1][0] == f"GET {expected.decode()} HTTP/1.1", path
        assert send(proxy.port, b"/public/../admin").startswith(b"HTTP/1.1 403")
        assert send(proxy.port, b"//admin").startswith(b"HTTP/1.1 403")
    finally:
        upstream.close()
