"""A cluster's common_http_protocol_options.max_headers_count, through Envoy 1.40 and meshproxy alike: a
response with more headers than that is a protocol error (502, reset reason `protocol error`, flag UPE,
upstream_cx_protocol_error), retried like a reset; one within the limit passes."""
import time

import pytest

from conftest import ENVOY, FLAGS_ACCESS_LOG, MESHPROXY, get, http_bootstrap, protocol_options, static_cluster
from loopback_servers import KeepAliveResponder

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


class HeavyHeaders(KeepAliveResponder):
    """Answers /many with six headers and anything else with two."""

    def response(self, head):
        extra = b"".join(b"x-extra-%d: %d\r\n" % (i, i) for i in range(4)) if b" /many" in head else b""
        return b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n" + extra + b"x-last: 1\r\n\r\nok"


@pytest.mark.parametrize("binary,name", PROXIES)
def test_too_many_response_headers_is_a_protocol_error(binary, name, launch, workdir):
    upstream = HeavyHeaders()
    log = workdir / f"upstream-limits-{name}-access.log"
    options = protocol_options("{ max_headers_count: 4 }")
    routes = ("            - match: { prefix: /retried }\n"
              "              route: { cluster: up, prefix_rewrite: /many, retry_policy: { retry_on: reset, num_retries: 1 } }\n"
              "            - { match: { prefix: / }, route: { cluster: up } }\n")
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(l, a, routes, [static_cluster("up", upstream.port, options)],
                                                           hcm_extra=FLAGS_ACCESS_LOG.format(path=log)),
                       f"upstream-limits-{name}", extra_args=("--file-flush-interval-msec", "50"))
        assert get(proxy.port, "/few")[0] == 200
        status, _, body = get(proxy.port, "/many")
        assert (status, body) == (502, b"upstream connect error or disconnect/reset before headers. "
                                       b"reset reason: protocol error")
        before = upstream.count
        assert get(proxy.port, "/retried")[0] == 502
        assert upstream.count - before == 2, "a protocol error is retried as a reset"
        assert proxy.stats("cluster.up.upstream_cx_protocol_error")["cluster.up.upstream_cx_protocol_error"] == "3"
    finally:
        upstream.close()
    lines = []
    deadline = time.monotonic() + 5
    while len(lines) < 3 and time.monotonic() < deadline:
        lines = log.read_text().splitlines() if log.exists() else []
        time.sleep(0.05)
    assert [(code, set(flags.split(","))) for code, flags, _ in (line.split(" ", 2) for line in lines)] == [
        ("200", {"-"}), ("502", {"UPE"}), ("502", {"UPE", "URX"})]
