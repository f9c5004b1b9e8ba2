"""Issue 4's scenario: meshd and two proxies under continuous keep-alive load while about a hundred pushes
switch route targets, endpoint sets, add and remove a cluster and change a listener: no failed request, and
every push visible in traffic within a second. Run with two meshproxies, and with real Envoy as the second
proxy as a cross-check of meshd."""
import http.client
import threading
import time

import pytest

from conftest import ENVOY, MESHPROXY, Process, free_port, get, wait_ready
from rawupstream import RawUpstream
from test_meshd_envoy import EXAMPLES, Meshd, wait_serving, wait_until
from test_meshd_envoy import config_dir, processes  # noqa: F401 (fixtures)

EXTRA_CLUSTER = """\
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: extra
connect_timeout: 1s
type: EDS
eds_cluster_config: { eds_config: { ads: {} } }
---
"@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
cluster_name: extra
endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: PORT } } } }] }]
"""


def start_proxy(binary, workdir, meshd, node_id, cluster):
    admin = free_port()
    bootstrap = (EXAMPLES / "envoy-ads.yaml").read_text()
    bootstrap = bootstrap.replace("port_value: 18000", f"port_value: {meshd.xds}").replace("port_value: 9901",
                                                                                            f"port_value: {admin}")
    path = workdir / f"{node_id}.yaml"
    path.write_text(bootstrap)
    args = [binary, "-c", str(path), "--service-node", node_id, "--service-cluster", cluster, "--concurrency", "2"]
    if binary == ENVOY:
        args += ["--base-id", str(free_port()), "--log-level", "warning"]
    process = Process(args, workdir / f"{node_id}.log")
    wait_ready(admin, process)
    return process


class Load:
    """Keep-alive clients hammering the proxies until stopped (and at most max_requests in all)."""

    def __init__(self, ports, clients=8, max_requests=200_000):
        self.failures, self.count, self.stop = [], [0], threading.Event()
        self.max_requests = max_requests
        self.threads = [threading.Thread(target=self.run, args=(ports[i % len(ports)],)) for i in range(clients)]

    def run(self, port):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        while not self.stop.is_set() and self.count[0] < self.max_requests:
            try:
                connection.request("GET", "/load")
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    self.failures.append(response.status)
                if response.getheader("connection") == "close":
                    connection.close()
                self.count[0] += 1
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.close()

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


@pytest.mark.parametrize("second", ["meshproxy", "envoy"])
def test_pushes_under_load_fail_no_request(tmp_path, config_dir, processes, second):
    upstreams = [RawUpstream() for _ in range(3)]
    try:
        front, edge = free_port(), free_port()
        (config_dir / "listener.yaml").write_text(
            (config_dir / "listener.yaml").read_text().replace("port_value: 15001", f"port_value: {front}"))
        (config_dir / "nodes/edge/listener.yaml").write_text(
            (config_dir / "nodes/edge/listener.yaml").read_text().replace("port_value: 15002", f"port_value: {edge}"))
        endpoints_template = (config_dir / "endpoints.yaml").read_text()

        def endpoints(httpbin_upstream):
            return endpoints_template.replace("port_value: 8000", f"port_value: {upstreams[httpbin_upstream].port}") \
                .replace("port_value: 8001", f"port_value: {upstreams[2].port}")
        (config_dir / "endpoints.yaml").write_text(endpoints(0))
        route_template = (config_dir / "route.yaml").read_text()
        meshd = Meshd(tmp_path, config_dir)
        processes.append(meshd.process)
        processes.append(start_proxy(MESHPROXY, tmp_path, meshd, "mesh-front", "demo"))
        processes.append(start_proxy(ENVOY if second == "envoy" else MESHPROXY, tmp_path, meshd, "edge-1", "edge"))
        wait_serving(front)
        wait_serving(edge)

        def push_and_see(write, upstream_index, what):
            target = upstreams[upstream_index]
            before = len(target.requests)
            started = time.monotonic()
            write()
            wait_until(lambda: len(target.requests) > before + 4, timeout=3, interval=0.005, what=what)
            return time.monotonic() - started

        latencies = []
        pushes = 0
        httpbin_upstream = 0
        with Load([front, edge]) as load:
            for cycle in range(16):
                latencies.append(push_and_see(lambda: meshd.write("route.yaml", route_template.replace(
                    "cluster: httpbin", "cluster: pages")), 2, f"cycle {cycle}: route to pages"))
                latencies.append(push_and_see(lambda: meshd.write("route.yaml", route_template), httpbin_upstream,
                                              f"cycle {cycle}: route back to httpbin"))
                httpbin_upstream = 1 - httpbin_upstream
                latencies.append(push_and_see(lambda: meshd.write("endpoints.yaml", endpoints(httpbin_upstream)),
                                              httpbin_upstream, f"cycle {cycle}: endpoints moved"))
                latencies.append(push_and_see(
                    lambda: (meshd.write("extra.yaml", EXTRA_CLUSTER.replace("PORT", str(upstreams[2].port))),
                             time.sleep(0.3),
                             meshd.write("route.yaml", route_template.replace("cluster: httpbin", "cluster: extra"))),
                    2, f"cycle {cycle}: new cluster"))
                latencies.append(push_and_see(lambda: meshd.write("route.yaml", route_template), httpbin_upstream,
                                              f"cycle {cycle}: off the new cluster"))
                (config_dir / "extra.yaml").unlink()  # make-before-break: removed after traffic moved off it
                prefix = "ingress_http" if cycle % 2 else f"ingress_http_{cycle}"
                listener = (config_dir / "listener.yaml").read_text()
                listener = listener.replace(listener.split("stat_prefix: ")[1].split("\n")[0], prefix)
                latencies.append(push_and_see(lambda: meshd.write("listener.yaml", listener), httpbin_upstream,
                                              f"cycle {cycle}: listener changed"))
                pushes += 7
        assert load.failures == [], f"{len(load.failures)} failed requests, first: {load.failures[:5]}"
        assert pushes >= 100 and load.count[0] > 1000
        assert max(latencies) < 1.0 + 0.3, f"slowest push took {max(latencies):.2f}s"
        def all_synced():
            proxies = meshd.syncz()["proxies"]
            statuses = {(p["node_id"], name): t["status"] for p in proxies for name, t in p["types"].items()}
            return len(proxies) == 2 and all(status == "SYNCED" for status in statuses.values()) and statuses
        wait_until(all_synced, timeout=5, what="both proxies acknowledged the last push")
    finally:
        for upstream in upstreams:
            upstream.close()
