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


def xxh64(data: bytes, seed: int = 0) -> int:
    """xxHash64, to check the cookie value both proxies generate (Envoy hashes the connection's addresses)."""
    p1, p2, p3, p4, p5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63,
                          0x27D4EB2F165667C5)
    mask = (1 << 64) - 1

    def rotl(x, r):
        return ((x << r) | (x >> (64 - r))) & mask

    def round_(acc, lane):
        return (rotl((acc + lane * p2) & mask, 31) * p1) & mask

    def merge(acc, value):
        return ((acc ^ round_(0, value)) * p1 + p4) & mask

    n, i = len(data), 0
    if n >= 32:
        v = [(seed + p1 + p2) & mask, (seed + p2) & mask, seed, (seed - p1) & mask]
        while i + 32 <= n:
            for k in range(4):
                v[k] = round_(v[k], int.from_bytes(data[i + 8 * k:i + 8 * k + 8], "little"))
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & mask
        for k in range(4):
            h = merge(h, v[k])
    else:
        h = (seed + p5) & mask
    h = (h + n) & mask
    while i + 8 <= n:
        h = (rotl(h ^ round_(0, int.from_bytes(data[i:i + 8], "little")), 27) * p1 + p4) & mask
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (int.from_bytes(data[i:i + 4], "little") * p1 & mask), 23) * p2 + p3) & mask
        i += 4
    while i < n:
        h = (rotl(h ^ (data[i] * p5 & mask), 11) * p1) & mask
        i += 1
    h = ((h ^ (h >> 33)) * p2) & mask
    h = ((h ^ (h >> 29)) * p3) & mask
    return h ^ (h >> 32)


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_generated_cookie_keeps_a_client_on_one_host(binary, name, launch):
    import http.client
    import re
    upstreams = [RawUpstream() for _ in range(3)]
    endpoint = "{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }}"
    cluster = f"""  - name: hashed
    type: STATIC
    lb_policy: RING_HASH
    load_assignment:
      cluster_name: hashed
      endpoints: [{{ lb_endpoints: [{", ".join(endpoint.format(u.port) for u in upstreams)}] }}]
"""
    routes = """            - match: { prefix: /session }
              route: { cluster: hashed, hash_policy: [{ cookie: { name: s, ttl: 0s } }] }
            - match: { prefix: / }
              route:
                cluster: hashed
                hash_policy: [{ cookie: { name: sticky, ttl: 30s, path: /app, attributes: [{ name: SameSite, value: Strict }, { name: Secure }] } }]
"""
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(l, a, routes, [cluster]), f"hash-cookie-{name}")
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", "/app")
        response = conn.getresponse()
        response.read()
        set_cookie = response.getheader("set-cookie")
        match = re.fullmatch(r'sticky="([0-9a-f]{16})"; Max-Age=30; Path=/app; SameSite=Strict; Secure; HttpOnly',
                             set_cookie or "")
        assert match, set_cookie
        local, remote = conn.sock.getsockname(), conn.sock.getpeername()
        addresses = f"{local[0]}:{local[1]}{remote[0]}:{remote[1]}".encode()
        assert match.group(1) == f"{xxh64(addresses):016x}", "the value is the hash of the connection's addresses"
        conn.request("GET", "/app")
        again = conn.getresponse()
        again.read()
        assert again.getheader("set-cookie") == set_cookie, "the same connection gets the same cookie"
        conn.close()

        def served(cookie):
            before = [len(u.requests) for u in upstreams]
            status, headers, _ = get(proxy.port, "/app", headers={"cookie": cookie})
            assert status == 200 and not [v for k, v in headers if k.lower() == "set-cookie"]
            return next(i for i, u in enumerate(upstreams) if len(u.requests) > before[i])

        assert len({served(f'sticky="{match.group(1)}"') for _ in range(6)}) == 1
        assert len({served(f'sticky="{i:016x}"') for i in range(40)}) == 3
        status, headers, _ = get(proxy.port, "/session")
        assert re.fullmatch(r's="[0-9a-f]{16}"; HttpOnly', dict((k.lower(), v) for k, v in headers)["set-cookie"])
    finally:
        for upstream in upstreams:
            upstream.close()


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_source_ip_hash_on_a_small_ring(binary, name, launch):
    """hash_policy connection_properties.source_ip on a ring bounded by minimum/maximum_ring_size: one client
    address, one host; without a hash policy the same requests spread."""
    upstreams = [RawUpstream() for _ in range(3)]
    endpoint = "{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }}"
    cluster = f"""  - name: hashed
    type: STATIC
    lb_policy: RING_HASH
    ring_hash_lb_config: {{ minimum_ring_size: 64, maximum_ring_size: 256 }}
    load_assignment:
      cluster_name: hashed
      endpoints: [{{ lb_endpoints: [{", ".join(endpoint.format(u.port) for u in upstreams)}] }}]
"""
    routes = ("            - match: { prefix: /ip }\n"
              "              route: { cluster: hashed, hash_policy: [{ connection_properties: { source_ip: true } }] }\n"
              "            - { match: { prefix: / }, route: { cluster: hashed } }\n")
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(l, a, routes, [cluster]), f"hash-source-ip-{name}")
        for _ in range(30):
            assert get(proxy.port, "/ip")[0] == 200
        assert sorted(len(u.requests) for u in upstreams) == [0, 0, 30]
        for _ in range(30):
            assert get(proxy.port, "/other")[0] == 200
        assert all(len(u.requests) > 0 for u in upstreams), "unhashed requests take random ring points"
    finally:
        for upstream in upstreams:
            upstream.close()
