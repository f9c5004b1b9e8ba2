"""L4: envoy.filters.network.tcp_proxy through Envoy 1.40 and meshproxy alike: a TCP echo with a
megabyte each way, weighted clusters, max_connect_attempts against a dead port, idle_timeout, and
Envoy's tcp.<stat_prefix>.* stats."""
import socket
import socketserver
import threading
import time

import pytest

from conftest import ENVOY, MESHPROXY, free_port


class Echo(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, tag):
        self.tag = tag
        self.connections = 0

        class Handler(socketserver.BaseRequestHandler):
            def handle(inner):
                self.connections += 1
                while True:
                    data = inner.request.recv(65536)
                    if not data:
                        return
                    inner.request.sendall(data)

        super().__init__(("127.0.0.1", 0), Handler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


def config(tcp_proxy, clusters):
    def make(listener, admin):
        cluster_yaml = "".join(f"""
  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment: {{ cluster_name: {name}, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}] }}
""" for name, port in clusters.items())
        return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: tcp
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: echo_tcp
{tcp_proxy}
  clusters:{cluster_yaml}
"""
    return make


PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


@pytest.fixture
def echoes():
    servers = [Echo("a"), Echo("b")]
    yield servers
    for server in servers:
        server.close()


def roundtrip(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(1 << 16)
            if not chunk:
                break
            got += chunk
        sender.join(timeout=10)
        return got


def wait_stat(proxy, name, value, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        current = proxy.stats(name).get(name)
        if current == value or time.monotonic() > deadline:
            return current
        time.sleep(0.05)


@pytest.mark.parametrize("binary,name", PROXIES)
def test_echo_a_megabyte_and_count_bytes(binary, name, echoes, launch):
    proxy = launch(binary, config("          cluster: a", {"a": echoes[0].port}), f"tcp-{name}")
    payload = bytes(range(256)) * 4096
    assert roundtrip(proxy.port, payload) == payload
    assert wait_stat(proxy, "tcp.echo_tcp.downstream_cx_rx_bytes_total", str(len(payload))) == str(len(payload))
    assert wait_stat(proxy, "tcp.echo_tcp.downstream_cx_tx_bytes_total", str(len(payload))) == str(len(payload))
    stats = proxy.stats("echo_tcp")
    assert stats["tcp.echo_tcp.downstream_cx_total"] == "1"
    assert proxy.stats("cluster.a.upstream_cx_total")["cluster.a.upstream_cx_total"] == "1"


@pytest.mark.parametrize("binary,name", PROXIES)
def test_weighted_clusters_spread_connections(binary, name, echoes, launch):
    split = "          weighted_clusters: { clusters: [{ name: a, weight: 1 }, { name: b, weight: 1 }] }"
    proxy = launch(binary, config(split, {"a": echoes[0].port, "b": echoes[1].port}), f"tcp-split-{name}")
    for i in range(40):
        assert roundtrip(proxy.port, b"ping %d" % i) == b"ping %d" % i
    assert echoes[0].connections + echoes[1].connections == 40
    assert echoes[0].connections >= 5 and echoes[1].connections >= 5


@pytest.mark.parametrize("binary,name", PROXIES)
def test_connect_attempts_and_idle_timeout(binary, name, echoes, launch):
    dead = free_port()
    tcp = "          cluster: dead\n          max_connect_attempts: 3"
    proxy = launch(binary, config(tcp, {"dead": dead}), f"tcp-dead-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        assert s.recv(10) == b"", "the downstream connection is closed once every attempt failed"
    assert wait_stat(proxy, "cluster.dead.upstream_cx_connect_fail", "3") == "3"

    idle = "          cluster: a\n          idle_timeout: 0.3s"
    proxy = launch(binary, config(idle, {"a": echoes[0].port}), f"tcp-idle-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        started = time.monotonic()
        assert s.recv(10) == b""
        assert 0.2 < time.monotonic() - started < 3
    assert wait_stat(proxy, "tcp.echo_tcp.idle_timeout", "1") == "1"
