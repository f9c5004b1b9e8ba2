"""deploy/: the Kubernetes manifests pass an offline schema check (kubernetes-validate's bundled schemas), and
the configs they and the systemd units carry are accepted by meshd and meshproxy themselves."""
import configparser
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from conftest import MESHPROXY, ROOT
from test_meshd_envoy import MESHD

DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))


def documents():
    for path in MANIFESTS:
        for index, document in enumerate(yaml.safe_load_all(path.read_text())):
            yield pytest.param(document, id=f"{path.name}#{index}-{document['kind']}")


@pytest.mark.parametrize("document", list(documents()))
def test_manifest_is_valid_kubernetes(document):
    version = kubernetes_validate.utils.latest_version()
    kubernetes_validate.validate(document, version, strict=True)


def config_map(name):
    for path in MANIFESTS:
        for document in yaml.safe_load_all(path.read_text()):
            if document["kind"] == "ConfigMap" and document["metadata"]["name"] == name:
                return document["data"]
    raise AssertionError(f"no ConfigMap {name}")


def test_meshd_configmap_validates(tmp_path):
    for name, text in config_map("meshd-resources").items():
        (tmp_path / name).write_text(text)
    result = subprocess.run([MESHD, "validate", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
    assert ", 0 errors" in result.stdout


def test_sidecar_bootstrap_validates(tmp_path):
    path = tmp_path / "envoy.yaml"
    path.write_text(config_map("httpbin-sidecar")["envoy.yaml"])
    result = subprocess.run([MESHPROXY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("unit", ["meshd.service", "meshproxy.service"])
def test_systemd_units_are_well_formed(unit):
    parser = configparser.ConfigParser(strict=True, interpolation=None)
    parser.optionxform = str
    parser.read(DEPLOY / "systemd" / unit)
    assert set(parser.sections()) == {"Unit", "Service", "Install"}
    command = parser["Service"]["ExecStart"].split()
    assert command[0] == f"/usr/local/bin/{unit.split('.')[0]}"
    binary = MESHD if unit.startswith("meshd") else MESHPROXY
    # Every flag the unit passes is one the program knows.
    help_text = subprocess.run([binary, *(["serve"] if binary == MESHD else []), "--help"], capture_output=True,
                               text=True, timeout=30).stdout
    for flag in (word for word in command[1:] if word.startswith("--")):
        assert flag in help_text, f"{unit}: unknown flag {flag}"


@pytest.mark.parametrize("name", ["meshd.Containerfile", "meshproxy.Containerfile"])
def test_containerfiles_build_in_two_stages(name):
    text = (DEPLOY / "container" / name).read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and "swift:" in stages[0] and " AS build" in stages[0]
    assert "COPY --from=build" in text
