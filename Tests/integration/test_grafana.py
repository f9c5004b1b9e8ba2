"""The Grafana dashboards in deploy/grafana: valid dashboard JSON, and every metric their queries read is
one that meshproxy (attached to meshd) or meshd actually exports."""
import json
import re

from conftest import ROOT, get
from test_meshd_envoy import config_dir, processes, upstreams  # noqa: F401 (fixtures)
from test_meshd_meshproxy import attach

DASHBOARDS = ROOT / "deploy" / "grafana"
METRIC = re.compile(r"\b((?:envoy|meshd)_[a-z0-9_]+)")


def exprs(dashboard):
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_dashboards_read_metrics_that_exist(tmp_path, config_dir, upstreams, processes):  # noqa: F811
    dashboards = {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}
    assert set(dashboards) == {"meshd.json", "meshproxy.json"}
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] and dashboard["title"] and dashboard["panels"], name
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), f"{name}: panel ids are unique"
        for panel in dashboard["panels"]:
            assert panel["targets"] and set(panel["gridPos"]) == {"x", "y", "w", "h"}, (name, panel["title"])

    first, _ = upstreams
    meshd, listener_port, admin = attach(tmp_path, config_dir, first, processes, "mesh-grafana")
    assert get(listener_port, "/traffic")[0] == 200
    exported = get(admin, "/stats/prometheus")[2].decode() + get(meshd.admin, "/metrics")[2].decode()
    names = set(re.findall(r"^([a-z_][a-z0-9_]*)[{ ]", exported, re.MULTILINE))
    labels = set(re.findall(r'[{,]([a-z_][a-z0-9_]*)="', exported))
    wanted = {metric for dashboard in dashboards.values() for expr in exprs(dashboard) for metric in METRIC.findall(expr)}
    assert "envoy_cluster_name" in labels and "meshd_pushes_total" in wanted
    assert sorted(wanted - labels - names) == []
