"""A cluster's common_http_protocol_options.max_headers_count, through Envoy 1.40 and meshproxy alike: a
response with more headers than that is a protocol error (502, reset reason `protocol error`, flag UPE,
upstream_cx_protocol_error), retried like a reset; one within the limit passes."""
import time

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from loopback_servers import LoopbackServer

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]
ACCESS_LOG = """          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {path}
              log_format: {{ text_format_source: {{ inline_string: "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n" }} }}
"""


class HeavyHeaders(LoopbackServer):
    """Answers /many with six headers and anything else with two, keep-alive, counting requests."""

    def __init__(self):
        self.count = 0
        super().__init__()

    def handle(self, conn):
        with conn:
            pending = b""
            while (read := self.read_head(conn, pending)) is not None:
                head, pending = read
                self.count += 1
                extra = b"".join(b"x-extra-%d: %d\r\n" % (i, i) for i in range(4)) if b" /many" in head else b""
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n" + extra + b"x-last: 1\r\n\r\nok")


@pytest.mark.parametrize("binary,name", PROXIES)
def test_too_many_response_headers_is_a_protocol_error(binary, name, launch, workdir):
    upstream = HeavyHeaders()
    log = workdir / f"upstream-limits-{name}-access.log"
    options = ("    typed_extension_protocol_options:\n"
               "      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n"
               '        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n'
               "        common_http_protocol_options: { max_headers_count: 4 }\n"
               "        explicit_http_config: { http_protocol_options: {} }\n")
    routes = ("            - match: { prefix: /retried }\n"
              "              route: { cluster: up, prefix_rewrite: /many, retry_policy: { retry_on: reset, num_retries: 1 } }\n"
              "            - { match: { prefix: / }, route: { cluster: up } }\n")
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(l, a, routes, [static_cluster("up", upstream.port, options)],
                                                           hcm_extra=ACCESS_LOG.format(path=log)),
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
