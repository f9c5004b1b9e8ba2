"""stats_sinks with envoy.stat_sinks.statsd over UDP, through Envoy 1.40 and meshproxy alike: counters
as deltas, gauges as values, histogram samples as timers, named as Envoy names them, every
stats_flush_interval."""
import socket
import time

import pytest

from conftest import ENVOY, MESHPROXY, get, seed_config
from rawupstream import RawUpstream


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_statsd_sink_sends_counter_deltas_and_gauges(binary, name, launch):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    upstream = RawUpstream()
    sinks = f"""
stats_flush_interval: 0.2s
stats_sinks:
- name: envoy.stat_sinks.statsd
  typed_config:
    "@type": type.googleapis.com/envoy.config.metrics.v3.StatsdSink
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {receiver.getsockname()[1]} }} }}
"""
    try:
        proxy = launch(binary, lambda l, a: seed_config(upstream.port, l, a) + sinks, f"statsd-{name}")
        for _ in range(3):
            assert get(proxy.port, "/counted")[0] == 200
        lines, deadline = [], time.monotonic() + 10
        counted = "envoy.cluster.httpbin_service.upstream_rq_total"
        while time.monotonic() < deadline:
            try:
                lines += receiver.recv(65536).decode().split("\n")
            except socket.timeout:
                pass
            counted_so_far = sum(int(l.split(":")[1].split("|")[0]) for l in lines if l.startswith(counted + ":"))
            healthy = any(l.startswith("envoy.cluster.httpbin_service.membership_healthy:") for l in lines)
            timed = sum(1 for l in lines if l.startswith("envoy.cluster.httpbin_service.upstream_rq_time:"))
            if counted_so_far >= 3 and healthy and timed >= 3 and any(l.startswith("envoy.server.live:") for l in lines):
                break
        totals = {}
        for line in lines:
            metric, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            if kind == "c":
                totals[metric] = totals.get(metric, 0) + int(value)
        assert totals.get(counted) == 3, [l for l in lines if "upstream_rq" in l]
        assert any(l.startswith("envoy.cluster.httpbin_service.membership_healthy:1|g") for l in lines)
        assert any(l.startswith("envoy.server.live:1|g") for l in lines)
        # Every histogram sample, in whole milliseconds.
        for histogram in ("envoy.cluster.httpbin_service.upstream_rq_time", "envoy.http.ingress_http.downstream_rq_time"):
            samples = [l for l in lines if l.startswith(histogram + ":")]
            assert len(samples) == 3 and all(l.endswith("|ms") and l.split(":")[1][:-3].isdigit() for l in samples), samples
    finally:
        upstream.close()
        receiver.close()
