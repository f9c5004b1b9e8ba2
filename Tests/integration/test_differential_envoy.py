"""The same bootstrap through real Envoy 1.40 and through meshproxy: same status codes, same added
request headers, same retry stats, same listener connection counts."""
import json
import socket
import time

import pytest

from conftest import ENVOY, MESHPROXY, free_port, http_bootstrap, seed_config
from test_seed_walkthrough import RETRY_ROUTE

PROXIES = [("envoy", ENVOY), ("meshproxy", MESHPROXY)]


def run_scenario(binary, name, httpbin, launch):
    proxy = launch(binary, lambda l, a: seed_config(httpbin, l, a, route_extra=RETRY_ROUTE), name)
    outcome = {}
    status, headers, body = proxy.get("/headers?show_env=1", headers={"Host": "client.example:1234"})
    seen = json.loads(body)["headers"]
    outcome["headers_status"] = status
    outcome["upstream_header_names"] = sorted(seen)
    outcome["deterministic_values"] = {k: v for k, v in seen.items() if k != "X-Request-Id"}
    outcome["response_header_names"] = sorted({name for name, _ in headers} - {"content-length"})
    outcome["server"] = dict(headers)["server"]
    outcome["status_404"] = proxy.get("/status/404")[0]
    outcome["status_500"] = proxy.get("/status/500")[0]
    outcome["post"] = proxy.get("/anything", headers={"x-request-id": "fixed"})[0]
    _, text = proxy.admin_get("/stats")
    outcome["retry_lines"] = [line for line in text.splitlines() if "retry" in line]
    stats = proxy.stats()
    outcome["counters"] = {name: stats.get(name) for name in [
        "cluster.httpbin_service.upstream_rq_total", "cluster.httpbin_service.upstream_rq_completed",
        "cluster.httpbin_service.upstream_rq_200", "cluster.httpbin_service.upstream_rq_404",
        "cluster.httpbin_service.upstream_rq_500", "cluster.httpbin_service.external.upstream_rq_completed",
        "http.ingress_http.downstream_rq_total", "http.ingress_http.downstream_rq_2xx",
        "http.ingress_http.downstream_rq_4xx", "http.ingress_http.downstream_rq_5xx"]}
    outcome["listener_cx_total"] = stats.get(f"listener.127.0.0.1_{proxy.port}.downstream_cx_total")
    return outcome


def test_meshproxy_matches_envoy(httpbin, launch):
    envoy = run_scenario(ENVOY, "diff-envoy", httpbin, launch)
    mesh = run_scenario(MESHPROXY, "diff-meshproxy", httpbin, launch)
    for key in envoy:
        assert mesh[key] == envoy[key], f"{key}: meshproxy {mesh[key]!r} != envoy {envoy[key]!r}"


def test_both_reject_untyped_router_only_envoy(tmp_path):
    import subprocess
    path = tmp_path / "untyped.yaml"
    path.write_text(seed_config(8000, free_port(), free_port(), typed_router=False))
    envoy = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    mesh = subprocess.run([MESHPROXY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60)
    assert envoy.returncode == 1
    assert "Didn't find a registered implementation for 'envoy.filters.http.router' with type URL: ''" in (
        envoy.stdout + envoy.stderr)
    assert mesh.returncode == 0, "meshproxy deliberately accepts the seed's untyped router"


def listener_counts(proxy):
    prefix = f"listener.127.0.0.1_{proxy.port}."
    stats = proxy.stats(prefix)
    return {key: stats.get(prefix + key) for key in (
        "downstream_cx_total", "downstream_cx_active", "downstream_cx_destroy",
        "worker_0.downstream_cx_total", "worker_0.downstream_cx_active")}


def counts_when(proxy, active, timeout=5.0):
    """The listener's counts once `downstream_cx_active` reads `active` (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = listener_counts(proxy)
        if counts["downstream_cx_active"] == str(active) or time.monotonic() > deadline:
            return counts
        time.sleep(0.05)


@pytest.mark.parametrize("name,binary", PROXIES)
def test_listener_connection_counts_match_envoy(name, binary, launch):
    """Three keep-alive connections, each answered once, then closed by the client: the listener's
    and its worker's connection counts while they are open and after."""
    proxy = launch(binary, lambda l, a: http_bootstrap(
        l, a, "            - { match: { prefix: / }, direct_response: { status: 200 } }\n", []), f"cx-counts-{name}")
    clients = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(3)]
    try:
        for client in clients:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200")
        assert counts_when(proxy, 3) == {
            "downstream_cx_total": "3", "downstream_cx_active": "3", "downstream_cx_destroy": "0",
            "worker_0.downstream_cx_total": "3", "worker_0.downstream_cx_active": "3"}
    finally:
        for client in clients:
            client.close()
    assert counts_when(proxy, 0) == {
        "downstream_cx_total": "3", "downstream_cx_active": "0", "downstream_cx_destroy": "3",
        "worker_0.downstream_cx_total": "3", "worker_0.downstream_cx_active": "0"}
