"""meshproxy attached to meshd over ADS: dynamic listeners, routes, clusters and endpoints, hot-swapped
without failed requests; NACKs for what meshproxy rejects; reconnection after meshd restarts."""
import json
import re
import threading
import time

import pytest

from conftest import MESHPROXY, Process, free_port, get, wait_for_port, wait_ready  # noqa: F401
from rawupstream import RawUpstream
from test_meshd_envoy import EXAMPLES, Meshd, configure, last_nack, wait_serving, wait_until
from test_meshd_envoy import config_dir, processes, upstreams  # noqa: F401 (fixtures)


def start_meshproxy(workdir, meshd, node_id, cluster, name="meshproxy", delta=False):
    admin = free_port()
    bootstrap = (EXAMPLES / "envoy-ads.yaml").read_text()
    if delta:
        bootstrap = bootstrap.replace("api_type: GRPC", "api_type: DELTA_GRPC")
    bootstrap = bootstrap.replace("port_value: 18000", f"port_value: {meshd.xds}")
    bootstrap = bootstrap.replace("port_value: 9901", f"port_value: {admin}")
    path = workdir / f"{name}-{node_id}.yaml"
    path.write_text(bootstrap)
    process = Process([MESHPROXY, "-c", str(path), "--service-node", node_id, "--service-cluster", cluster,
                       "--concurrency", "2", "--drain-time-s", "2"], workdir / f"{name}-{node_id}.log")
    wait_ready(admin, process)
    return process, admin


def attach(tmp_path, config_dir, upstream, processes, node_id, delta=False, keep_meshd=True):
    """meshd on a copy of the example tree with its endpoints on `upstream`, and one meshproxy attached and
    serving: (meshd, listener port, proxy admin port). The restart test stops meshd itself."""
    listener_port = free_port()
    configure(config_dir, upstream.port, listener_port)
    meshd = Meshd(tmp_path, config_dir)
    if keep_meshd:
        processes.append(meshd.process)
    proxy, admin = start_meshproxy(tmp_path, meshd, node_id, "demo", delta=delta)
    processes.append(proxy)
    wait_serving(listener_port)
    return meshd, listener_port, admin


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_meshproxy_runs_from_meshd_and_swaps_without_failures(tmp_path, config_dir, upstreams, processes, delta):
    first, second = upstreams
    meshd, listener_port, admin = attach(tmp_path, config_dir, first, processes, "mesh-1", delta=delta)

    failures, successes = [], [0]
    stop = threading.Event()

    def load():
        while not stop.is_set() and successes[0] < 20000:
            try:
                status, _, _ = get(listener_port, "/load", timeout=5)
                if status == 200:
                    successes[0] += 1
                else:
                    failures.append(status)
            except OSError as error:
                failures.append(repr(error))
    clients = [threading.Thread(target=load) for _ in range(4)]
    for client in clients:
        client.start()
    try:
        endpoints = (config_dir / "endpoints.yaml").read_text()
        for push in range(10):
            target = second if push % 2 == 0 else first
            other = first if target is second else second
            before = len(target.requests)
            meshd.write("endpoints.yaml", endpoints.replace(f"port_value: {first.port}", f"port_value: {target.port}"))
            wait_until(lambda: len(target.requests) > before + 5, timeout=5, interval=0.01,
                       what=f"push {push} visible in traffic")
            del other
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=10)
    assert failures == [], f"failed requests during pushes: {failures[:5]}"
    assert successes[0] > 50

    proxies = meshd.syncz()["proxies"]
    mine = next(p for p in proxies if p["node_id"] == "mesh-1")
    assert mine["client"].startswith("meshproxy")
    assert mine["protocol"] == ("Delta" if delta else "SotW")
    assert all(t["status"] == "SYNCED" for t in mine["types"].values()), mine
    stats = dict(line.split(": ", 1) for line in get(admin, "/stats")[2].decode().splitlines() if ": " in line)
    assert stats["control_plane.connected_state"] == "1"
    assert int(stats["cluster_manager.cds.update_success"]) >= 1
    assert int(stats["cluster_manager.cds.version"]) > 0 and int(stats["listener_manager.lds.version"]) > 0
    dump = json.loads(get(admin, "/config_dump")[2])
    clusters = next(c for c in dump["configs"] if c["@type"].endswith("ClustersConfigDump"))
    with_eds = json.loads(get(admin, "/config_dump?include_eds")[2])
    eds = next(c for c in with_eds["configs"] if c["@type"].endswith("EndpointsConfigDump"))
    assert {e["endpoint_config"]["cluster_name"] for e in eds["dynamic_endpoint_configs"]} == {"httpbin", "pages"}
    assert [c["cluster"]["name"] for c in clusters["dynamic_active_clusters"]] == ["httpbin", "pages"]
    assert len(clusters["dynamic_active_clusters"][0]["version_info"]) == 16


def test_meshproxy_nacks_what_it_cannot_serve(tmp_path, config_dir, upstreams, processes):
    first, _ = upstreams
    meshd, listener_port, admin = attach(tmp_path, config_dir, first, processes, "mesh-n")
    good = (config_dir / "route.yaml").read_text()
    meshd.write("route.yaml", good.replace('match: { prefix: "/" }', 'match: { safe_regex: { regex: "([" } }'))

    def nack():
        return last_nack(meshd, "mesh-n", "RDS")
    message = wait_until(nack, what="RDS NACK from meshproxy")
    assert "main" in message and "invalid regex" in message, message
    assert get(listener_port, "/still")[0] == 200, "the last good route keeps serving"
    dump = json.loads(get(admin, "/config_dump")[2])
    routes = next(c for c in dump["configs"] if c["@type"].endswith(".RoutesConfigDump"))
    failed = routes["dynamic_route_configs"][0]["error_state"]
    assert "invalid regex" in failed["details"] and failed["failed_configuration"]["name"] == "main"
    stats = get(admin, "/stats?filter=rds")[2].decode()
    assert "http.ingress_http.rds.main.update_rejected: 1" in stats
    meshd.write("route.yaml", good)
    wait_until(lambda: nack() is None, what="NACK cleared")


def test_meshproxy_survives_meshd_restart(tmp_path, config_dir, upstreams, processes):
    first, second = upstreams
    meshd, listener_port, admin = attach(tmp_path, config_dir, first, processes, "mesh-r", keep_meshd=False)
    xds_port = meshd.xds
    from test_hot_swap_under_load import Load
    with Load([listener_port], clients=4, max_requests=100_000) as load:
        meshd.process.stop()  # killed mid-run: traffic keeps flowing on the last good config
        wait_until(lambda: "control_plane.connected_state: 0" in get(admin, "/stats")[2].decode(), what="disconnected")
        served = load.count[0]
        wait_until(lambda: load.count[0] > served + 50, what="traffic while meshd is down")
        # Restart on the same port with a changed endpoint: the proxy reconnects and follows.
        endpoints = (config_dir / "endpoints.yaml").read_text()
        (config_dir / "endpoints.yaml").write_text(
            endpoints.replace(f"port_value: {first.port}", f"port_value: {second.port}"))
        restarted_admin = free_port()
        restarted = Process([meshd.process.args[0], "--config-dir", str(config_dir), "--xds-address",
                             f"127.0.0.1:{xds_port}", "--admin-address", f"127.0.0.1:{restarted_admin}"],
                            tmp_path / "meshd-restarted.log")
        processes.append(restarted)
        wait_for_port(xds_port)
        before = len(second.requests)
        wait_until(lambda: len(second.requests) > before + 10, timeout=40, interval=0.2,
                   what="traffic on the new endpoint after reconnect")
    assert load.failures == [], f"failed requests: {load.failures[:5]}"
    # Content-hash versions survive the restart: only the changed endpoints were pushed again.
    metrics = get(restarted_admin, "/metrics")[2].decode()
    for unchanged in ("CDS", "LDS", "RDS"):
        assert f'meshd_pushes_total{{type="{unchanged}"}} 0' in metrics, metrics
    assert 'meshd_pushes_total{type="EDS"} 1' in metrics


def test_changed_filter_chain_drains_and_busy_port_is_nacked(tmp_path, config_dir, upstreams, processes):
    import socket
    first, _ = upstreams
    meshd, listener_port, admin = attach(tmp_path, config_dir, first, processes, "mesh-d")
    idle = socket.create_connection(("127.0.0.1", listener_port), timeout=10)
    idle.sendall(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
    response = b""
    while not response.endswith(b"\r\n\r\n0"):  # the whole response: the upstream answers "0" (body bytes read)
        chunk = idle.recv(4096)
        assert chunk, response
        response += chunk
    assert response.startswith(b"HTTP/1.1 200")
    # A new filter chain (stat_prefix): the socket stays, new connections use it, the idle one drains.
    listener = (config_dir / "listener.yaml").read_text()
    meshd.write("listener.yaml", listener.replace("stat_prefix: ingress_http", "stat_prefix: ingress_v2"))
    def served_by_new_chain():
        assert get(listener_port, "/new")[0] == 200
        return "http.ingress_v2.downstream_rq_total: " in get(admin, "/stats?filter=ingress_v2")[2].decode()
    wait_until(served_by_new_chain, what="new connections on the new filter chain")
    idle.settimeout(5)
    assert idle.recv(1) == b"", "the idle connection was closed after --drain-time-s"
    idle.close()
    # A listener on a port something else holds is NACKed with the reason; the rest keeps serving.
    busy = (config_dir / "listener.yaml").read_text().replace("name: http", "name: busy").replace(
        f"port_value: {listener_port}", f"port_value: {first.port}")
    meshd.write("busy.yaml", busy)

    def nack():
        return last_nack(meshd, "mesh-d", "LDS")
    message = wait_until(nack, what="LDS NACK for the busy port")
    assert "busy" in message and "cannot bind" in message, message
    assert get(listener_port, "/still")[0] == 200


def test_new_eds_cluster_warms_until_its_endpoints_arrive(tmp_path, config_dir, upstreams, processes):
    first, second = upstreams
    meshd, listener_port, admin = attach(tmp_path, config_dir, first, processes, "mesh-w")

    def clusters():
        dump = json.loads(get(admin, "/config_dump?resource=dynamic_warming_clusters")[2])
        warming = [c["cluster"]["name"] for c in dump["configs"]]
        active = json.loads(get(admin, "/config_dump?resource=dynamic_active_clusters")[2])
        return warming, [c["cluster"]["name"] for c in active["configs"]]
    meshd.write("late.yaml", '"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: late\n'
                             "connect_timeout: 1s\ntype: EDS\neds_cluster_config: { eds_config: { ads: {} } }\n")
    wait_until(lambda: clusters()[0] == ["late"], what="'late' warming without endpoints")
    assert "late" not in clusters()[1]
    meshd.write("late-endpoints.yaml", '"@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\n'
                f"cluster_name: late\nendpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: "
                f"{{ address: 127.0.0.1, port_value: {second.port} }} }} }} }}] }}]\n")
    wait_until(lambda: clusters() == ([], ["httpbin", "late", "pages"]), what="'late' active once its endpoints came")


def test_warming_cluster_enters_service_after_initial_fetch_timeout(tmp_path, config_dir, upstreams, processes):
    first, _ = upstreams
    meshd, listener_port, admin = attach(tmp_path, config_dir, first, processes, "mesh-t")
    meshd.write("never.yaml", '"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: never\n'
                              "connect_timeout: 1s\ntype: EDS\n"
                              "eds_cluster_config: { eds_config: { ads: {}, initial_fetch_timeout: 0.5s } }\n")

    def active():
        dump = json.loads(get(admin, "/config_dump?resource=dynamic_active_clusters")[2])
        return [c["cluster"]["name"] for c in dump["configs"]]
    written = time.monotonic()
    wait_until(lambda: "never" in active(), timeout=5, what="'never' active after its fetch timed out")
    assert time.monotonic() - written >= 0.5
    stats = get(admin, "/stats?filter=never")[2].decode()
    assert "cluster.never.assignment_timeout_received: 1" in stats
    assert "cluster.never.membership_total: 0" in stats


def test_tcp_proxy_and_grpc_over_http2_pushed_by_meshd(tmp_path, config_dir, upstreams, processes):
    import grpc
    from grpc_echo import EchoServer

    first, _ = upstreams
    meshd, _, admin = attach(tmp_path, config_dir, first, processes, "mesh-l4")
    echo = EchoServer().start()
    try:
        tcp_port, grpc_port = free_port(), free_port()
        meshd.write("l4.yaml", f"""resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: tcp
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {tcp_port} }} }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.tcp_proxy
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
        stat_prefix: raw_tcp
        cluster: httpbin
- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: echo
  type: STATIC
  typed_extension_protocol_options:
    envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
      "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
      explicit_http_config: {{ http2_protocol_options: {{}} }}
  load_assignment: {{ cluster_name: echo, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {echo.port} }} }} }} }}] }}] }}
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: grpc
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {grpc_port} }} }}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: grpc_in
        http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
        route_config:
          virtual_hosts: [{{ name: v, domains: ["*"], routes: [{{ match: {{ prefix: / }}, route: {{ cluster: echo }} }}] }}]
""")
        wait_for_port(tcp_port, timeout=10)
        wait_for_port(grpc_port, timeout=10)
        status, _, _ = get(tcp_port, "/through-tcp")
        assert status == 200
        assert first.requests[-1][0] == "GET /through-tcp HTTP/1.1"
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            assert channel.unary_unary("/mesh.Echo/Unary")(b"via meshd", timeout=10) == b"via meshd"
        stats = get(admin, "/stats?filter=raw_tcp|echo.upstream_cx_http2")[2].decode()
        counts = dict(line.split(": ", 1) for line in stats.splitlines())
        assert int(counts["tcp.raw_tcp.downstream_cx_total"]) >= 2, "the port probe and the request"
        assert "cluster.echo.upstream_cx_http2_total: 1" in stats
    finally:
        echo.stop()


def test_meshd_status_shows_acks_and_nack_reasons(tmp_path, config_dir, upstreams, processes):
    import subprocess

    from test_meshd_envoy import MESHD

    first, _ = upstreams
    meshd, _, _ = attach(tmp_path, config_dir, first, processes, "mesh-status")

    def status():
        out = subprocess.run([MESHD, "status", "--admin-address", f"127.0.0.1:{meshd.admin}"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()
    header, row = status()[:2]
    assert header.split()[:8] == ["NAME", "CLUSTER", "CLIENT", "CDS", "LDS", "EDS", "RDS", "SDS"]
    assert row.startswith("mesh-status") and row.count("SYNCED") == 4 and "NOT SENT" in row
    assert re.search(r"20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row), "the latest ACK's time"
    good = (config_dir / "route.yaml").read_text()
    meshd.write("route.yaml", good.replace('match: { prefix: "/" }', 'match: { safe_regex: { regex: "([" } }'))
    wait_until(lambda: last_nack(meshd, "mesh-status", "RDS"), what="RDS NACK")
    row = status()[1]
    assert "NACKED" in row and "RDS: " in row and "invalid regex" in row
