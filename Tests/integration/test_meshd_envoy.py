"""meshd drives a real Envoy 1.40 over ADS (state-of-the-world and delta): serving, hot edits, broken files,
Envoy's NACKs, and per-cluster listeners. Every wait is bounded."""
import json
import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from conftest import ENVOY, ROOT, Process, free_port, get, wait_for_port
from rawupstream import RawUpstream

MESHD = os.environ.get("MESHD_BIN", str(ROOT / ".build/debug/meshd"))
EXAMPLES = ROOT / "deploy/examples"


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except OSError as error:
            last = error
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout}s (last: {last!r})")


def last_nack(meshd, node_id, short_type):
    """The NACK message meshd holds for one proxy and type, or None."""
    proxy = next(p for p in meshd.syncz()["proxies"] if p["node_id"] == node_id)
    return proxy["types"].get(short_type, {}).get("last_nack")


class Meshd:
    def __init__(self, workdir, config_dir, extra_args=()):
        self.xds, self.admin = free_port(), free_port()
        self.config_dir = config_dir
        self.process = Process([MESHD, "--config-dir", str(config_dir), "--xds-address", f"127.0.0.1:{self.xds}",
                                "--admin-address", f"127.0.0.1:{self.admin}", "--debounce-after", "50ms",
                                *extra_args],
                               workdir / f"meshd-{self.xds}.log")
        wait_for_port(self.admin)
        wait_for_port(self.xds)

    def syncz(self):
        return json.loads(get(self.admin, "/debug/syncz")[2])

    def write(self, name, text):
        path = self.config_dir / name
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(path)  # editors' rename-over-the-file write


@pytest.fixture
def config_dir(tmp_path):
    directory = tmp_path / "config"
    shutil.copytree(EXAMPLES / "meshd", directory)
    return directory


@pytest.fixture
def upstreams():
    first, second = RawUpstream(), RawUpstream()
    yield first, second
    first.close()
    second.close()


def configure(config_dir, upstream_port, listener_port):
    endpoints = (config_dir / "endpoints.yaml").read_text().replace("port_value: 8000", f"port_value: {upstream_port}")
    (config_dir / "endpoints.yaml").write_text(endpoints)
    listener = (config_dir / "listener.yaml").read_text().replace("port_value: 15001", f"port_value: {listener_port}")
    (config_dir / "listener.yaml").write_text(listener)


@pytest.fixture
def processes():
    started = []
    yield started
    for process in reversed(started):
        process.stop()


def start_envoy(workdir, meshd, node_id, cluster, delta=False, name="envoy"):
    admin = free_port()
    bootstrap = (EXAMPLES / "envoy-ads.yaml").read_text()
    bootstrap = bootstrap.replace("port_value: 18000", f"port_value: {meshd.xds}")
    bootstrap = bootstrap.replace("port_value: 9901", f"port_value: {admin}")
    if delta:
        bootstrap = bootstrap.replace("api_type: GRPC", "api_type: DELTA_GRPC")
    path = workdir / f"{name}-{node_id}.yaml"
    path.write_text(bootstrap)
    process = Process([ENVOY, "-c", str(path), "--service-node", node_id, "--service-cluster", cluster,
                       "--concurrency", "1", "--base-id", str(free_port()), "--log-level", "warning"],
                      workdir / f"{name}-{node_id}.log")
    return process, admin


def wait_serving(port, path="/x", timeout=15.0):
    return wait_until(lambda: get(port, path, timeout=2)[0] == 200, timeout=timeout, what=f"200 from :{port}")


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_envoy_runs_from_meshd_and_follows_edits(tmp_path, config_dir, upstreams, processes, delta):
    first, second = upstreams
    listener_port = free_port()
    configure(config_dir, first.port, listener_port)
    meshd = Meshd(tmp_path, config_dir)
    processes.append(meshd.process)
    envoy, envoy_admin = start_envoy(tmp_path, meshd, "envoy-1", "demo", delta=delta)
    processes.append(envoy)

    wait_serving(listener_port)
    assert len(first.requests) >= 1
    dump = json.loads(get(envoy_admin, "/config_dump")[2])
    listeners = next(c for c in dump["configs"] if c["@type"].endswith("ListenersConfigDump"))
    versions = [listener["active_state"]["version_info"] for listener in listeners["dynamic_listeners"]]
    assert len(versions) == 1 and len(versions[0]) == 16, "Envoy reports meshd's listener version"

    # Send everything to the second upstream: live within a second of the write.
    cluster_text = (config_dir / "endpoints.yaml").read_text().replace(f"port_value: {first.port}",
                                                                        f"port_value: {second.port}")
    written = time.monotonic()
    meshd.write("endpoints.yaml", cluster_text)
    wait_until(lambda: get(listener_port, "/y")[0] == 200 and len(second.requests) > 0, timeout=5, interval=0.02,
               what="traffic on the second upstream")
    assert time.monotonic() - written < 1.5

    proxies = wait_until(lambda: [p for p in meshd.syncz()["proxies"] if p["node_id"] == "envoy-1"
                                  and p["types"].get("EDS", {}).get("status") == "SYNCED"],
                         what="EDS synced in syncz")
    assert proxies[0]["cluster"] == "demo"
    assert proxies[0]["protocol"] == ("Delta" if delta else "SotW")
    assert proxies[0]["client"].startswith("envoy 1.40")


def test_broken_files_are_reported_and_envoy_keeps_serving(tmp_path, config_dir, upstreams, processes):
    first, _ = upstreams
    listener_port = free_port()
    configure(config_dir, first.port, listener_port)
    meshd = Meshd(tmp_path, config_dir)
    processes.append(meshd.process)
    envoy, _ = start_envoy(tmp_path, meshd, "envoy-b", "demo")
    processes.append(envoy)
    wait_serving(listener_port)

    meshd.write("cluster.yaml", (config_dir / "cluster.yaml").read_text().replace("type: EDS", "type: EDSS"))
    errors = wait_until(lambda: meshd.syncz()["config_errors"], what="config error in syncz")
    assert errors[0]["file"].endswith("cluster.yaml")
    assert "unknown enum value \"EDSS\"" in errors[0]["reason"]
    meshd.write("route.yaml", "this: [is not yaml")
    wait_until(lambda: len(meshd.syncz()["config_errors"]) == 2, what="second error")
    for _ in range(5):
        assert get(listener_port, "/still")[0] == 200


def test_envoy_nack_is_shown_and_cleared(tmp_path, config_dir, upstreams, processes):
    first, _ = upstreams
    listener_port = free_port()
    configure(config_dir, first.port, listener_port)
    meshd = Meshd(tmp_path, config_dir)
    processes.append(meshd.process)
    envoy, _ = start_envoy(tmp_path, meshd, "envoy-n", "demo")
    processes.append(envoy)
    wait_serving(listener_port)

    good_route = (config_dir / "route.yaml").read_text()
    meshd.write("route.yaml", good_route.replace('match: { prefix: "/" }', 'match: { safe_regex: { regex: "([" } }'))

    def nack():
        return last_nack(meshd, "envoy-n", "RDS")
    message = wait_until(nack, what="RDS NACK")
    assert "missing ]" in message, message
    assert get(listener_port, "/after-nack")[0] == 200, "Envoy keeps its last good route"
    meshd.write("route.yaml", good_route)
    wait_until(lambda: nack() is None, what="NACK cleared")


def test_two_clusters_get_their_own_listeners(tmp_path, config_dir, upstreams, processes):
    first, _ = upstreams
    front_port, back_port = free_port(), free_port()
    configure(config_dir, first.port, front_port)
    (config_dir / "nodes/backend").mkdir(parents=True)
    backend_listener = (config_dir / "listener.yaml").read_text().replace(f"port_value: {front_port}",
                                                                           f"port_value: {back_port}")
    (config_dir / "nodes/backend/listener.yaml").write_text(backend_listener)
    meshd = Meshd(tmp_path, config_dir)
    processes.append(meshd.process)
    front, front_admin = start_envoy(tmp_path, meshd, "front-1", "frontend", name="front")
    back, back_admin = start_envoy(tmp_path, meshd, "back-1", "backend", name="back")
    processes.extend([front, back])
    wait_serving(front_port)
    wait_serving(back_port)
    front_listeners = get(front_admin, "/listeners")[2].decode()
    back_listeners = get(back_admin, "/listeners")[2].decode()
    assert f":{front_port}" in front_listeners and f":{back_port}" not in front_listeners
    assert f":{back_port}" in back_listeners and f":{front_port}" not in back_listeners


def test_meshd_validate_and_sigterm(tmp_path, config_dir):
    import subprocess
    ok = subprocess.run([MESHD, "validate", str(config_dir)], capture_output=True, text=True, timeout=30)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "5 files, 7 resources, 0 errors" in ok.stdout
    (config_dir / "bad.yaml").write_text('"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: x\nlb_polcy: RANDOM\n')
    bad = subprocess.run([MESHD, "validate", str(config_dir)], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1
    assert f"{config_dir}/bad.yaml:3: lb_polcy: unknown field \"lb_polcy\"" in bad.stdout
    meshd = Meshd(tmp_path, config_dir)
    assert get(meshd.admin, "/ready")[0] == 200
    assert "meshd_resources{type=\"CDS\"} 2" in get(meshd.admin, "/metrics")[2].decode()
    assert meshd.process.stop(signal.SIGTERM) == 0
