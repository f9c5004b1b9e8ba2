"""meshproxy's command line: --mode validate, bad configs, --config-yaml, SIGTERM."""
import signal
import subprocess

from conftest import MESHPROXY, free_port, seed_config


def run(*args, timeout=30):
    return subprocess.run([MESHPROXY, *args], capture_output=True, text=True, timeout=timeout)


def test_validate_ok_with_untyped_router(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(seed_config(8000, 15001, 15000, typed_router=False))
    result = run("--mode", "validate", "-c", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"configuration '{path}' OK"


def test_validate_reports_file_line_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(seed_config(8000, 15001, 15000).replace("lb_policy: ROUND_ROBIN", "lb_policy: ROUND_ROBIM"))
    result = run("--mode", "validate", "-c", str(path))
    assert result.returncode == 1
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "ROUND_ROBIM" in text)
    assert (f"{path}:{line}: static_resources.clusters[0].lb_policy: unknown enum value \"ROUND_ROBIM\""
            in result.stdout)


def test_validate_rejects_unknown_cluster_in_route(tmp_path):
    path = tmp_path / "bad-route.yaml"
    path.write_text(seed_config(8000, 15001, 15000).replace("cluster: httpbin_service\n", "cluster: nowhere\n", 1))
    result = run("--mode", "validate", "-c", str(path))
    assert result.returncode == 1
    assert "route: unknown cluster 'nowhere'" in result.stdout


def test_unsupported_extension_uses_envoys_wording(tmp_path):
    path = tmp_path / "ext.yaml"
    path.write_text(seed_config(8000, 15001, 15000).replace("router.v3.Router", "router.v3.Routr"))
    result = run("--mode", "validate", "-c", str(path))
    assert result.returncode == 1
    assert ("Didn't find a registered implementation for 'envoy.filters.http.router' with type URL: "
            "'type.googleapis.com/envoy.extensions.filters.http.router.v3.Routr'") in result.stdout


def test_config_yaml_merges_over_file(tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(seed_config(8000, 15001, 15000))
    result = run("--mode", "validate", "-c", str(path), "--config-yaml", "node: {id: n1, cluster: c1}")
    assert result.returncode == 0, result.stdout


def test_sigterm_exits_zero(tmp_path, httpbin):
    listener, admin = free_port(), free_port()
    path = tmp_path / "run.yaml"
    path.write_text(seed_config(httpbin, listener, admin))
    process = subprocess.Popen([MESHPROXY, "-c", str(path), "--concurrency", "1", "--drain-time-s", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        from conftest import get, wait_for_port
        wait_for_port(listener)
        assert get(listener, "/get")[0] == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)


def test_a_config_refused_while_serving_is_a_clean_error(tmp_path):
    """An error found as the server builds (not in validate mode) exits 1 with the reason, not a crash."""
    path = tmp_path / "bad-filter-config.yaml"
    text = seed_config(8000, free_port(), free_port()).replace(
        "              routes:\n",
        "              typed_per_filter_config:\n"
        "                envoy.filters.http.unknown:\n"
        "                  \"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n"
        "              routes:\n", 1)
    assert "typed_per_filter_config" in text
    path.write_text(text)
    result = run("-c", str(path), timeout=30)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "typed_per_filter_config[envoy.filters.http.unknown]" in result.stdout + result.stderr
    assert "Fatal error" not in result.stdout + result.stderr
