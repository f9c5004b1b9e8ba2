"""The seed walkthrough on meshproxy: the headers Envoy adds, retries, local replies and admin output,
asserted against what Envoy 1.40 printed (shared/reference/envoy-1.40-seed-walkthrough.md)."""
import json
import re

from conftest import MESHPROXY, free_port, get, post, seed_config

# `curl -s 127.0.0.1:15000/stats | grep retry` on Envoy 1.40 after one GET /status/500 with
# retry_on 5xx, num_retries 3 (the reference, exact).
REFERENCE_RETRY_LINES = """\
cluster.httpbin_service.circuit_breakers.default.rq_retry_open: 0
cluster.httpbin_service.circuit_breakers.high.rq_retry_open: 0
cluster.httpbin_service.retry.upstream_rq_500: 3
cluster.httpbin_service.retry.upstream_rq_5xx: 3
cluster.httpbin_service.retry.upstream_rq_completed: 3
cluster.httpbin_service.retry_or_shadow_abandoned: 0
cluster.httpbin_service.upstream_rq_retry: 3
cluster.httpbin_service.upstream_rq_retry_backoff_exponential: 3
cluster.httpbin_service.upstream_rq_retry_backoff_ratelimited: 0
cluster.httpbin_service.upstream_rq_retry_limit_exceeded: 1
cluster.httpbin_service.upstream_rq_retry_overflow: 0
cluster.httpbin_service.upstream_rq_retry_success: 0"""

RETRY_ROUTE = """\
                  retry_policy:
                    retry_on: "5xx"
                    num_retries: 3"""


def seed(httpbin, **kwargs):
    return lambda listener, admin: seed_config(httpbin, listener, admin, **kwargs)


def test_headers_added_like_envoy(httpbin, launch):
    proxy = launch(MESHPROXY, seed(httpbin, typed_router=False), "seed-headers")
    status, headers, body = proxy.get("/headers?show_env=1", headers={"Host": f"127.0.0.1:{proxy.port}"})
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen["Host"] == "127.0.0.1"  # auto_host_rewrite: the endpoint's name, without the port
    assert seen["X-Envoy-Original-Host"] == f"127.0.0.1:{proxy.port}"
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Envoy-Expected-Rq-Timeout-Ms"] == "15000"
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", seen["X-Request-Id"])
    assert "X-Forwarded-For" not in seen and "Via" not in seen
    names = [name for name, _ in headers]
    assert dict(headers)["server"] == "envoy"
    assert "x-envoy-upstream-service-time" in names
    assert names == [name.lower() for name in names]


def test_client_request_id_and_forwarded_for_pass_through(httpbin, launch):
    proxy = launch(MESHPROXY, seed(httpbin), "seed-passthrough")
    _, _, body = proxy.get("/headers?show_env=1", headers={"x-request-id": "my-id-123", "X-Forwarded-For": "10.0.0.9"})
    seen = json.loads(body)["headers"]
    assert seen["X-Request-Id"] == "my-id-123"
    assert seen["X-Forwarded-For"] == "10.0.0.9"


def test_retry_stats_match_envoy_reference(httpbin, launch):
    proxy = launch(MESHPROXY, seed(httpbin, route_extra=RETRY_ROUTE), "seed-retry")
    status, headers, body = proxy.get("/status/500")
    assert status == 500
    assert body == b""
    _, text = proxy.admin_get("/stats")
    retry_lines = "\n".join(line for line in text.splitlines() if "retry" in line)
    assert retry_lines == REFERENCE_RETRY_LINES
    stats = proxy.stats()
    assert stats["cluster.httpbin_service.upstream_rq_total"] == "4"
    assert stats["cluster.httpbin_service.upstream_rq_500"] == "1"
    assert stats["cluster.httpbin_service.upstream_rq_completed"] == "1"
    assert stats["http.ingress_http.downstream_rq_5xx"] == "1"
    _, clusters = proxy.admin_get("/clusters")
    assert f"httpbin_service::127.0.0.1:{httpbin}::rq_total::4" in clusters
    assert f"httpbin_service::127.0.0.1:{httpbin}::rq_error::4" in clusters


def test_retry_success_is_counted(httpbin, launch):
    # /status/500,200 answers one of the two at random; with 5 retries a 200 is near certain.
    extra = RETRY_ROUTE.replace("num_retries: 3", "num_retries: 10")
    proxy = launch(MESHPROXY, seed(httpbin, route_extra=extra), "seed-retry-success")
    status, _, _ = proxy.get("/status/500,200")
    assert status == 200
    stats = proxy.stats()
    if int(stats["cluster.httpbin_service.upstream_rq_retry"]) > 0:
        assert stats["cluster.httpbin_service.upstream_rq_retry_success"] == "1"


def test_upstream_down_gives_envoys_503(launch):
    dead = free_port()
    proxy = launch(MESHPROXY, lambda l, a: seed_config(dead, l, a), "seed-down")
    status, headers, body = proxy.get("/")
    assert status == 503
    assert body == b"upstream connect error or disconnect/reset before headers. reset reason: remote connection failure"
    assert [name for name, _ in headers] == ["content-length", "content-type", "date", "server"]
    stats = proxy.stats()
    assert stats["cluster.httpbin_service.upstream_cx_connect_fail"] == "1"
    assert stats["cluster.httpbin_service.upstream_rq_503"] == "1"
    assert stats["cluster.httpbin_service.upstream_rq_pending_failure_eject"] == "1"
    assert stats[f"listener.127.0.0.1_{proxy.port}.http.ingress_http.downstream_rq_5xx"] == "1"


def test_upstream_down_with_retries(launch):
    dead = free_port()
    proxy = launch(MESHPROXY, lambda l, a: seed_config(dead, l, a, route_extra=RETRY_ROUTE), "seed-down-retry")
    status, _, body = proxy.get("/")
    assert status == 503
    assert body == (b"upstream connect error or disconnect/reset before headers. "
                    b"retried and the latest reset reason: remote connection failure")
    stats = proxy.stats()
    assert stats["cluster.httpbin_service.upstream_cx_connect_fail"] == "4"
    assert stats["cluster.httpbin_service.upstream_rq_retry"] == "3"
    assert stats["cluster.httpbin_service.upstream_rq_retry_limit_exceeded"] == "1"
    assert stats["cluster.httpbin_service.upstream_rq_pending_failure_eject"] == "4"


def test_route_timeout_gives_504(httpbin, launch):
    extra = "                  timeout: 0.3s"
    proxy = launch(MESHPROXY, seed(httpbin, route_extra=extra), "seed-timeout")
    status, _, body = proxy.get("/delay/3", headers={})
    assert status == 504
    assert body == b"upstream request timeout"
    assert proxy.stats()["cluster.httpbin_service.upstream_rq_timeout"] == "1"
    _, _, headers_body = proxy.get("/headers")
    assert json.loads(headers_body)["headers"]["X-Envoy-Expected-Rq-Timeout-Ms"] == "300"


def test_no_route_is_404(httpbin, launch):
    config = lambda l, a: seed_config(httpbin, l, a).replace('prefix: "/"', 'prefix: "/only"')
    proxy = launch(MESHPROXY, config, "seed-noroute")
    status, headers, body = proxy.get("/elsewhere")
    assert status == 404 and body == b""
    assert proxy.stats()["http.ingress_http.no_route"] == "1"


def test_post_body_reaches_upstream(httpbin, launch):
    proxy = launch(MESHPROXY, seed(httpbin), "seed-post")
    status, _, body = post(proxy.port, "/post", body=b"hello", headers={"Content-Type": "text/plain"})
    assert status == 200
    assert json.loads(body)["data"] == "hello"


def test_admin_endpoints(httpbin, launch):
    proxy = launch(MESHPROXY, seed(httpbin), "seed-admin")
    proxy.get("/get")
    status, ready = proxy.admin_get("/ready")
    assert (status, ready) == (200, "LIVE\n")
    _, listeners = proxy.admin_get("/listeners")
    assert listeners == f"listener_0::127.0.0.1:{proxy.port}\n"
    listeners_json = json.loads(proxy.admin_get("/listeners?format=json")[1])
    assert listeners_json["listener_statuses"][0]["local_address"]["socket_address"]["port_value"] == proxy.port
    _, clusters = proxy.admin_get("/clusters")
    lines = clusters.splitlines()
    assert lines[0] == "httpbin_service::observability_name::httpbin_service"
    assert "httpbin_service::default_priority::max_retries::3" in lines
    assert f"httpbin_service::127.0.0.1:{httpbin}::hostname::127.0.0.1" in lines
    assert f"httpbin_service::127.0.0.1:{httpbin}::health_flags::healthy" in lines
    dump = json.loads(proxy.admin_get("/config_dump")[1])
    types = [config["@type"].rsplit(".", 1)[1] for config in dump["configs"]]
    assert types == ["BootstrapConfigDump", "ClustersConfigDump", "ListenersConfigDump", "ScopedRoutesConfigDump",
                     "RoutesConfigDump", "SecretsConfigDump"]
    cluster = dump["configs"][1]["static_clusters"][0]["cluster"]
    assert cluster["connect_timeout"] == "5s" and "lb_policy" not in cluster
    only = json.loads(proxy.admin_get("/config_dump?resource=static_clusters")[1])
    assert len(only["configs"]) == 1
    info = json.loads(proxy.admin_get("/server_info")[1])
    assert info["state"] == "LIVE" and info["command_line_options"]["concurrency"] == 1
    _, prometheus = proxy.admin_get("/stats/prometheus")
    assert "# TYPE envoy_cluster_upstream_rq_total counter" in prometheus
    assert 'envoy_cluster_upstream_rq_total{envoy_cluster_name="httpbin_service"} 1' in prometheus
    assert 'envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="httpbin_service"} 1' in prometheus
    assert 'envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name="httpbin_service",le="+Inf"} 1' in prometheus
    _, filtered = proxy.admin_get("/stats?filter=upstream_rq_total$")
    assert filtered.splitlines() == ["cluster.httpbin_service.upstream_rq_total: 1"]
    stats_json = json.loads(proxy.admin_get("/stats?format=json")[1])
    assert {"name": "server.live", "value": 1} in stats_json["stats"]
    _, certs = proxy.admin_get("/certs")
    assert json.loads(certs) == {"certificates": []}


def test_admin_mutations(httpbin, launch):
    proxy = launch(MESHPROXY, seed(httpbin), "seed-admin-post")
    proxy.get("/get")
    assert proxy.stats()["cluster.httpbin_service.upstream_rq_total"] == "1"
    assert proxy.admin_get("/reset_counters")[0] == 405
    assert proxy.admin_post("/reset_counters") == (200, "OK\n")
    assert proxy.stats()["cluster.httpbin_service.upstream_rq_total"] == "0"
    status, text = proxy.admin_post("/logging?level=debug")
    assert status == 200 and "  upstream: debug" in text
    status, text = proxy.admin_post("/logging?paths=upstream:warning")
    assert "  upstream: warning" in text and "  router: debug" in text
    assert proxy.admin_post("/healthcheck/fail")[0] == 200
    assert proxy.stats()["server.live"] == "0"
    assert proxy.admin_post("/healthcheck/ok")[0] == 200
    assert proxy.admin_post("/quitquitquit") == (200, "OK\n")
    assert proxy.process.proc.wait(timeout=15) == 0
