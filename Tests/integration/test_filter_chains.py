"""Filter chain matching on one listener, through Envoy 1.40 and meshproxy alike: http_inspector
choosing HTTP/1.1 or h2c chains, source_prefix_ranges choosing between TCP chains (the client binds
127.0.0.2), default_filter_chain, listener_filters_timeout, and no_filter_chain_match."""
import socket
import subprocess
import time

import pytest

from conftest import ENVOY, MESHPROXY, static_cluster
from test_tcp_proxy import Echo, wait_stat

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


def hcm(prefix, body):
    return f"""
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200, body: {{ inline_string: "{body}" }} }} }}]"""


def tcp(prefix, cluster):
    return f"""
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: {prefix}
          cluster: {cluster}"""


def config(a_port, b_port, with_default=True):
    default = f"""
    default_filter_chain:
      filters:{tcp("fallback", "b")}""" if with_default else ""

    def make(listener, admin):
        return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: multi
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    listener_filters_timeout: 0.5s
    listener_filters:
    - name: envoy.filters.listener.http_inspector
      typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.listener.http_inspector.v3.HttpInspector }}
    filter_chains:
    - filter_chain_match: {{ application_protocols: [h2c] }}
      filters:{hcm("h2c_chain", "h2c chain")}
    - filter_chain_match: {{ application_protocols: [http/1.1, http/1.0] }}
      filters:{hcm("h1_chain", "http/1 chain")}
    - filter_chain_match: {{ source_prefix_ranges: [{{ address_prefix: 127.0.0.2, prefix_len: 32 }}] }}
      filters:{tcp("from_two", "a")}{default}
  clusters:
  - name: a
    type: STATIC
    load_assignment: {{ cluster_name: a, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {a_port} }} }} }} }}] }}] }}
  - name: b
    type: STATIC
    load_assignment: {{ cluster_name: b, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {b_port} }} }} }} }}] }}] }}
"""
    return make


def curl(port, *extra):
    out = subprocess.run(["curl", "-s", "--max-time", "10", *extra, f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=20)
    return out.stdout


def raw(port, payload, source="127.0.0.1"):
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as s:
        s.sendall(payload)
        return s.recv(1024)


@pytest.fixture
def echoes():
    servers = [Echo("a"), Echo("b")]
    yield servers
    for server in servers:
        server.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_chains_chosen_by_protocol_and_source(binary, name, echoes, launch):
    proxy = launch(binary, config(echoes[0].port, echoes[1].port), f"chains-{name}")
    assert curl(proxy.port) == "http/1 chain"
    assert curl(proxy.port, "--http2-prior-knowledge") == "h2c chain"
    assert raw(proxy.port, b"hello from two\r\n", source="127.0.0.2") == b"hello from two\r\n"
    assert (echoes[0].connections, echoes[1].connections) == (1, 0)
    assert raw(proxy.port, b"hello from one\r\n") == b"hello from one\r\n"
    assert (echoes[0].connections, echoes[1].connections) == (1, 1), "the default chain"
    stats = proxy.stats()
    assert stats["http.h1_chain.downstream_rq_total"] == "1"
    assert stats["http.h2c_chain.downstream_rq_http2_total"] == "1"
    assert stats["tcp.from_two.downstream_cx_total"] == "1"
    assert stats["tcp.fallback.downstream_cx_total"] == "1"
    assert stats["listener.127.0.0.1_%d.downstream_cx_total" % proxy.port] == "4"


@pytest.mark.parametrize("binary,name", PROXIES)
def test_no_match_and_inspector_timeout(binary, name, echoes, launch):
    proxy = launch(binary, config(echoes[0].port, echoes[1].port, with_default=False), f"nomatch-{name}")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(b"not http at all\r\n")
        with pytest.raises(ConnectionResetError):
            s.recv(10)
    assert wait_stat(proxy, "listener.127.0.0.1_%d.no_filter_chain_match" % proxy.port, "1") == "1"
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        started = time.monotonic()
        assert s.recv(10) == b"", "a silent client is closed at listener_filters_timeout"
        assert time.monotonic() - started < 4
    assert wait_stat(proxy, "listener.127.0.0.1_%d.downstream_pre_cx_timeout" % proxy.port, "1") == "1"
    # Neither connection got a filter chain: Envoy counts neither as a listener connection.
    stats = proxy.stats("listener.127.0.0.1_%d.downstream_cx" % proxy.port)
    assert stats["listener.127.0.0.1_%d.downstream_cx_total" % proxy.port] == "0"
    assert stats["listener.127.0.0.1_%d.downstream_cx_destroy" % proxy.port] == "0"


@pytest.mark.parametrize("binary,name", PROXIES)
def test_no_match_without_listener_filters(binary, name, echoes, launch):
    """Chosen at accept (no listener filters): a client no chain matches is closed and counted as
    no_filter_chain_match, not as a listener connection; one that matches counts as a listener
    connection (and its worker's)."""
    def make(listener, admin):
        return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: by_source
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - filter_chain_match: {{ source_prefix_ranges: [{{ address_prefix: 127.0.0.2, prefix_len: 32 }}] }}
      filters:{tcp("from_two", "a")}
  clusters:
{static_cluster("a", echoes[0].port)}"""
    proxy = launch(binary, make, f"nomatch-accept-{name}")
    # Closed (with a reset) at accept: the reset may come before connect() returns, or at the send.
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
            s.sendall(b"from one\r\n")
            assert s.recv(10) == b""
    except (ConnectionResetError, BrokenPipeError):
        pass
    assert wait_stat(proxy, "listener.127.0.0.1_%d.no_filter_chain_match" % proxy.port, "1") == "1"
    assert raw(proxy.port, b"from two\r\n", source="127.0.0.2") == b"from two\r\n"
    prefix = "listener.127.0.0.1_%d." % proxy.port
    assert wait_stat(proxy, prefix + "downstream_cx_destroy", "1") == "1"
    stats = proxy.stats(prefix)
    assert (stats[prefix + "downstream_cx_total"], stats[prefix + "worker_0.downstream_cx_total"]) == ("1", "1")
