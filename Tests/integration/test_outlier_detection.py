"""Outlier detection (consecutive_5xx, success rate) through Envoy 1.40 and meshproxy alike: a host that keeps
answering 500 is ejected after the configured streak, traffic goes to the healthy host, and the
ejection shows in the stats and in /clusters."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap
from loopback_servers import KeepAliveResponder
from rawupstream import RawUpstream


class Failing:
    """An upstream that answers every request with 500."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def cluster(good, bad):
    endpoint = "{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }}"
    return f"""  - name: pair
    type: STATIC
    outlier_detection: {{ consecutive_5xx: 3, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 50 }}
    load_assignment:
      cluster_name: pair
      endpoints: [{{ lb_endpoints: [{endpoint.format(good)}, {endpoint.format(bad)}] }}]
"""


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_consecutive_5xx_ejects_the_failing_host(binary, name, launch):
    good, bad = RawUpstream(), Failing()
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, "            - { match: { prefix: / }, route: { cluster: pair } }\n", [cluster(good.port, bad.port)]),
            f"outlier-{name}")
        statuses = [get(proxy.port, f"/r{i}")[0] for i in range(20)]
        _, clusters = proxy.admin_get("/clusters")
    finally:
        good.close()
        bad.close()
    assert statuses.count(500) == 3, statuses
    assert statuses[-10:] == [200] * 10, "after the ejection only the healthy host serves"
    stats = proxy.stats("cluster.pair.outlier_detection.")
    assert stats["cluster.pair.outlier_detection.ejections_active"] == "1"
    assert stats["cluster.pair.outlier_detection.ejections_enforced_consecutive_5xx"] == "1"
    assert stats["cluster.pair.outlier_detection.ejections_detected_consecutive_5xx"] == "1"
    assert f"pair::127.0.0.1:{bad.port}::health_flags::/failed_outlier_check" in clusters
    assert f"pair::127.0.0.1:{good.port}::health_flags::healthy" in clusters


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_an_ejected_host_returns_after_base_ejection_time(binary, name, launch):
    """Ejected after the streak for base_ejection_time (1 s here), then back in service at the next interval
    (0.25 s): its 500s come back."""
    good, bad = KeepAliveResponder(), Failing()
    detection = "consecutive_5xx: 3, interval: 0.25s, base_ejection_time: 1s, max_ejection_percent: 50"
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, "            - { match: { prefix: / }, route: { cluster: pair } }\n",
            [cluster(good.port, bad.port).replace(
                "consecutive_5xx: 3, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 50", detection)]),
            f"outlier-return-{name}")
        first = [get(proxy.port, f"/a{i}")[0] for i in range(12)]
        ejected_at = time.monotonic()
        assert first.count(500) == 3 and first[-4:] == [200] * 4
        during = [get(proxy.port, f"/b{i}")[0] for i in range(6)]
        time.sleep(max(0.0, ejected_at + 1.4 - time.monotonic()))
        active = proxy.stats("ejections_active")["cluster.pair.outlier_detection.ejections_active"]
        after = [get(proxy.port, f"/c{i}")[0] for i in range(6)]
    finally:
        good.close()
        bad.close()
    assert during == [200] * 6
    assert active == "0"
    assert 500 in after, "the host is back in load balancing"


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_success_rate_ejects_the_host_below_the_others(binary, name, launch):
    """success_rate_*: every interval, a host whose success rate is far below the mean of the hosts with
    enough requests is ejected (consecutive_5xx set out of reach, so only the interval check acts)."""
    import http.client
    import time
    hosts = [KeepAliveResponder(500)] + [KeepAliveResponder(200) for _ in range(5)]
    endpoints = "".join(f"        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {h.port} }} }} }}\n"
                        for h in hosts)
    cluster_text = f"""  - name: six
    type: STATIC
    outlier_detection:
      consecutive_5xx: 100000
      interval: 1s
      base_ejection_time: 30s
      max_ejection_percent: 50
      success_rate_minimum_hosts: 5
      success_rate_request_volume: 5
    load_assignment:
      cluster_name: six
      endpoints:
      - lb_endpoints:
{endpoints}"""
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(l, a, "            - { match: { prefix: / }, route: { cluster: six } }\n",
                                                         [cluster_text]), f"success-rate-{name}")
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        deadline = time.monotonic() + 10
        ejected = "0"
        while time.monotonic() < deadline and ejected == "0":
            for _ in range(60):
                connection.request("GET", "/")
                connection.getresponse().read()
            time.sleep(0.3)
            ejected = proxy.stats("outlier_detection.ejections_enforced_success_rate")[
                "cluster.six.outlier_detection.ejections_enforced_success_rate"]
        connection.close()
        assert ejected == "1"
        _, text = proxy.admin_get("/clusters")
        assert f"six::127.0.0.1:{hosts[0].port}::health_flags::/failed_outlier_check" in text.splitlines()
        stats = proxy.stats("cluster.six.outlier_detection.ejections_")
        assert stats["cluster.six.outlier_detection.ejections_detected_success_rate"] == "1"
        assert stats["cluster.six.outlier_detection.ejections_active"] == "1"
    finally:
        for host in hosts:
            host.close()


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_split_local_origin_errors_eject_a_host_that_refuses_connections(binary, name, launch):
    from conftest import free_port
    good, dead = KeepAliveResponder(), free_port()
    endpoint = "{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {} }} }} }} }}"
    pair = f"""  - name: pair
    type: STATIC
    connect_timeout: 1s
    outlier_detection: {{ split_external_local_origin_errors: true, consecutive_local_origin_failure: 2,
                          consecutive_5xx: 2, interval: 1s, base_ejection_time: 30s, max_ejection_percent: 50 }}
    load_assignment:
      cluster_name: pair
      endpoints: [{{ lb_endpoints: [{endpoint.format(good.port)}, {endpoint.format(dead)}] }}]
"""
    routes = ("            - match: { prefix: / }\n"
              "              route: { cluster: pair, retry_policy: { retry_on: connect-failure, num_retries: 3 } }\n")
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(l, a, routes, [pair]), f"od-local-{name}")
        assert [get(proxy.port, "/")[0] for _ in range(8)] == [200] * 8
        stats = proxy.stats("cluster.pair.outlier_detection.")
        assert stats["cluster.pair.outlier_detection.ejections_enforced_consecutive_local_origin_failure"] == "1"
        assert stats["cluster.pair.outlier_detection.ejections_detected_consecutive_5xx"] == "0"
        assert stats["cluster.pair.outlier_detection.ejections_active"] == "1"
        _, clusters = proxy.admin_get("/clusters")
        assert f"pair::127.0.0.1:{dead}::health_flags::/failed_outlier_check" in clusters
    finally:
        good.close()
