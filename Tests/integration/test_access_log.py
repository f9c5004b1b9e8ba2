"""Access logs on loopback, run through Envoy 1.40 and meshproxy with the same config: Envoy's default
format and a JSON format with a status filter, for a proxied request, no route (NR), an upstream that
refuses (UF), an upstream timeout (UT), and a tcp_proxy connection; /reopen_logs after rotation."""
import json
import re
import socket
import time

import pytest

from conftest import ENVOY, MESHPROXY, free_port, get, post
from rawupstream import RawUpstream

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]
DEFAULT_LINE = re.compile(
    r'^\[(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>\S+)" '
    r'(?P<code>\d+) (?P<flags>\S+) (?P<received>\d+) (?P<sent>\d+) (?P<duration>\d+) (?P<service_time>\S+) '
    r'"(?P<xff>[^"]*)" "(?P<agent>[^"]*)" "(?P<request_id>[^"]*)" "(?P<authority>[^"]*)" "(?P<upstream>[^"]*)"$')


def config(workdir, name, upstream_port, dead_port, tcp_port):
    text_log, json_log, tcp_log = (workdir / f"{name}-{kind}.log" for kind in ("text", "json", "tcp"))

    def make(listener, admin):
        return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: http
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress_http
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {text_log}
          - name: envoy.access_loggers.file
            filter: {{ status_code_filter: {{ comparison: {{ op: GE, value: {{ default_value: 400, runtime_key: unused }} }} }} }}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {json_log}
              log_format:
                json_format:
                  code: "%RESPONSE_CODE%"
                  flags: "%RESPONSE_FLAGS%"
                  details: "%RESPONSE_CODE_DETAILS%"
                  cluster: "%UPSTREAM_CLUSTER%"
                  route: "%ROUTE_NAME%"
                  method: "%REQ(:METHOD)%"
                  line: "%REQ(:METHOD)% %REQ(:PATH)%"
                  received: "%BYTES_RECEIVED%"
                  transport: "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - name: ok_route
                match: {{ prefix: /ok }}
                route: {{ cluster: up }}
              - name: slow_route
                match: {{ prefix: /slow }}
                route: {{ cluster: up, timeout: 0.3s }}
              - name: down_route
                match: {{ prefix: /down }}
                route: {{ cluster: down }}
  - name: tcp
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {tcp_port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: raw
          cluster: up
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {tcp_log}
              log_format: {{ text_format_source: {{ inline_string: "%UPSTREAM_CLUSTER% %BYTES_RECEIVED% %BYTES_SENT% %UPSTREAM_HOST%\\n" }} }}
  clusters:
  - name: up
    type: STATIC
    load_assignment: {{ cluster_name: up, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream_port} }} }} }} }}] }}] }}
  - name: down
    type: STATIC
    connect_timeout: 1s
    load_assignment: {{ cluster_name: down, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {dead_port} }} }} }} }}] }}] }}
"""
    return make, text_log, json_log, tcp_log


def lines(path, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        found = path.read_text().splitlines() if path.exists() else []
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.parametrize("binary,name", PROXIES)
def test_access_logs_match_envoy(binary, name, workdir, launch):
    upstream = RawUpstream()
    try:
        tcp_port = free_port()
        make, text_log, json_log, tcp_log = config(workdir, f"al-{name}", upstream.port, free_port(), tcp_port)
        proxy = launch(binary, make, f"al-{name}", extra_args=("--file-flush-interval-msec", "100"))
        headers = {"User-Agent": "access-test", "X-Request-Id": "req-1", "X-Forwarded-For": "10.0.0.9"}
        assert get(proxy.port, "/ok", headers=headers)[0] == 200
        assert post(proxy.port, "/ok/post", body=b"hello", headers=headers)[0] == 200
        assert get(proxy.port, "/nowhere", headers=headers)[0] == 404
        assert get(proxy.port, "/down", headers=headers)[0] == 503
        assert get(proxy.port, "/slow?ms=2000", headers=headers)[0] == 504
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as s:
            s.sendall(b"GET /ok HTTP/1.1\r\nHost: raw\r\nConnection: close\r\n\r\n")
            received = b""
            while chunk := s.recv(4096):
                received += chunk
        assert received.startswith(b"HTTP/1.1 200")

        parsed = [DEFAULT_LINE.match(line) for line in lines(text_log, 5)]
        assert all(parsed), lines(text_log, 5)
        rows = [(m["method"], m["path"], m["protocol"], m["code"], m["flags"], m["received"], m["xff"], m["agent"],
                 m["request_id"], m["authority"]) for m in parsed]
        authority = f"127.0.0.1:{proxy.port}"
        assert rows == [
            ("GET", "/ok", "HTTP/1.1", "200", "-", "0", "10.0.0.9", "access-test", "req-1", authority),
            ("POST", "/ok/post", "HTTP/1.1", "200", "-", "5", "10.0.0.9", "access-test", "req-1", authority),
            ("GET", "/nowhere", "HTTP/1.1", "404", "NR", "0", "10.0.0.9", "access-test", "req-1", authority),
            ("GET", "/down", "HTTP/1.1", "503", "UF", "0", "10.0.0.9", "access-test", "req-1", authority),
            ("GET", "/slow?ms=2000", "HTTP/1.1", "504", "UT", "0", "10.0.0.9", "access-test", "req-1", authority),
        ]
        assert [parsed[i]["upstream"] for i in (0, 1, 2, 4)] == [f"127.0.0.1:{upstream.port}"] * 2 + ["-", f"127.0.0.1:{upstream.port}"]
        assert parsed[0]["sent"] == "1" and parsed[1]["sent"] == "1", "the raw upstream answers the body length"
        assert parsed[0]["service_time"] != "-" and parsed[2]["service_time"] == "-"
        assert int(parsed[4]["duration"]) >= 250, "the 0.3 s route timeout"

        raw_records = lines(json_log, 3)
        # Keys come sorted, as Envoy writes them (its Struct loses the config's order too).
        assert all(line.startswith('{"cluster":') for line in raw_records), raw_records
        records = [json.loads(line) for line in raw_records]
        assert [(r["code"], r["flags"], r["cluster"], r["route"], r["method"], r["line"], r["received"]) for r in records] == [
            (404, "NR", None, None, "GET", "GET /nowhere", 0),
            (503, "UF", "down", "down_route", "GET", "GET /down", 0),
            (504, "UT", "up", "slow_route", "GET", "GET /slow?ms=2000", 0),
        ]
        assert records[0]["details"] == "route_not_found"
        assert records[2]["details"] == "response_timeout"
        assert records[1]["details"] == ("upstream_reset_before_response_started{remote_connection_failure|"
                                         "delayed_connect_error:_Connection_refused}")
        assert [r["transport"] for r in records] == [None, "delayed_connect_error:_Connection_refused", None]

        tcp_line = lines(tcp_log, 1)[0].split()
        assert tcp_line[0] == "up" and int(tcp_line[1]) > 30 and int(tcp_line[2]) > 30
        assert tcp_line[3] == f"127.0.0.1:{upstream.port}"

        rotated = text_log.with_suffix(".1")
        text_log.rename(rotated)
        assert post(proxy.admin, "/reopen_logs")[0] == 200
        assert get(proxy.port, "/ok/after-rotation", headers=headers)[0] == 200
        assert "/ok/after-rotation" in "\n".join(lines(text_log, 1))
    finally:
        upstream.close()
