"""/stats/prometheus read by a real Prometheus text parser (prometheus_client), and compared family by
family with Envoy 1.40's output for the same config after the same traffic."""
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, seed_config, static_cluster
from rawupstream import RawUpstream

# Families a dashboard built on Envoy's metrics reads first (the parser drops counters' `_total`).
ESSENTIAL = [
    "envoy_cluster_upstream_rq", "envoy_cluster_upstream_rq_xx",
    "envoy_cluster_upstream_rq_time", "envoy_cluster_upstream_cx_active", "envoy_cluster_upstream_cx_connect_ms",
    "envoy_cluster_upstream_cx_length_ms", "envoy_cluster_membership_healthy", "envoy_http_downstream_rq_xx",
    "envoy_http_downstream_rq_time", "envoy_http_downstream_cx_length_ms", "envoy_http_downstream_cx_active",
    "envoy_listener_downstream_cx", "envoy_server_live", "envoy_server_uptime",
]


def families(proxy):
    text = urllib.request.urlopen(f"http://127.0.0.1:{proxy.admin}/stats/prometheus", timeout=10).read().decode()
    found = {}
    for family in text_string_to_metric_families(text):  # raises on anything malformed
        labels = {tuple(sorted(k for k in sample.labels if k not in ("le", "quantile"))) for sample in family.samples}
        found[family.name] = (family.type, sorted(labels))
    return found


def test_prometheus_output_parses_and_agrees_with_envoy(launch):
    upstream = RawUpstream()
    try:
        seen = {}
        for binary, name in ((ENVOY, "envoy"), (MESHPROXY, "meshproxy")):
            proxy = launch(binary, lambda l, a: seed_config(upstream.port, l, a), f"prom-{name}")
            for _ in range(3):
                assert get(proxy.port, "/prom")[0] == 200
            seen[name] = families(proxy)
    finally:
        upstream.close()
    envoy, mesh = seen["envoy"], seen["meshproxy"]
    assert [name for name in ESSENTIAL if name not in mesh] == []
    assert [name for name in ESSENTIAL if name not in envoy] == []
    disagreements = {name: (envoy[name], mesh[name]) for name in envoy.keys() & mesh.keys() if envoy[name] != mesh[name]}
    assert disagreements == {}, "same families, same types and label names"
    assert mesh["envoy_cluster_upstream_rq_time"][0] == "histogram"


@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_histogram_bucket_settings_set_the_buckets(launch, raw, binary, name):
    """stats_config.histogram_bucket_settings: a matched histogram gets the given bounds, in ascending order, in
    /stats/prometheus; the others keep Envoy's defaults."""
    def make(listener, admin):
        text = http_bootstrap(listener, admin, "            - match: { prefix: / }\n              route: { cluster: app }\n",
                              [static_cluster("app", raw.port)])
        return ("stats_config:\n  histogram_bucket_settings:\n"
                "  - match: { prefix: cluster.app.upstream_rq_time }\n    buckets: [100, 1, 10]\n") + text

    proxy = launch(binary, make, f"buckets-{name}")
    for _ in range(3):
        assert proxy.get("/")[0] == 200
    _, text = proxy.admin_get("/stats/prometheus")

    def bounds(metric):
        return [line.split('le="')[1].split('"')[0] for line in text.splitlines()
                if line.startswith(metric + "_bucket{")]
    assert bounds("envoy_cluster_upstream_rq_time") == ["1", "10", "100", "+Inf"]
    assert bounds("envoy_cluster_upstream_cx_length_ms")[:3] == ["0.5", "1", "5"]


@pytest.mark.parametrize("use_default_tags", [True, False])
def test_stats_tags_shape_the_labels_as_envoys_do(launch, raw, use_default_tags):
    """stats_config.stats_tags (fixed values first, then the built-in tags, then custom regexes) and
    use_all_default_tags: the same families with the same label names and values as Envoy's."""
    def make(listener, admin):
        text = http_bootstrap(listener, admin, "            - match: { prefix: / }\n              route: { cluster: app }\n",
                              [static_cluster("app", raw.port)])
        return ("stats_config:\n"
                f"  use_all_default_tags: {'true' if use_default_tags else 'false'}\n"
                "  stats_tags:\n"
                "  - { tag_name: zone_fixed, fixed_value: east }\n"
                "  - { tag_name: my_cluster, regex: '^cluster\\.((.+?)\\.)' }\n") + text

    seen = {}
    for binary, name in ((ENVOY, "envoy"), (MESHPROXY, "meshproxy")):
        proxy = launch(binary, make, f"tags-{name}-{use_default_tags}")
        for _ in range(2):
            assert proxy.get("/")[0] == 200
        _, text = proxy.admin_get("/stats/prometheus")
        samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name.startswith(("envoy_cluster_upstream_rq", "envoy_cluster_upstream_cx_total",
                                           "envoy_server_live")) and "le" not in sample.labels:
                    samples[sample.name, tuple(sorted(sample.labels.items()))] = True
        seen[name] = samples
    # Label sets of the metrics both export (Envoy has a histogram or two meshproxy lacks).
    shared = {name for name, _ in seen["meshproxy"]} & {name for name, _ in seen["envoy"]}
    only_mesh = sorted(key for key in seen["meshproxy"] if key[0] in shared and key not in seen["envoy"])
    only_envoy = sorted(key for key in seen["envoy"] if key[0] in shared and key not in seen["meshproxy"])
    assert (only_mesh, only_envoy) == ([], [])
    cluster_labels = [dict(labels) for sample, labels in seen["meshproxy"] if sample == "envoy_cluster_upstream_cx_total"]
    assert cluster_labels and cluster_labels[0]["zone_fixed"] == "east" and cluster_labels[0]["my_cluster"] == "app"
    assert ("envoy_cluster_name" in cluster_labels[0]) == use_default_tags
