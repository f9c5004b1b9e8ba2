"""The link order of release builds: scripts/order_file.py's reading of callgrind profiles, the committed
scripts/meshproxy.order, and scripts/release-flags.sh pointing lld at it."""
import importlib.util
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location("order_file", ROOT / "scripts" / "order_file.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Name compression as callgrind writes it: a number with its name the first time (maybe in a call line), the
# number alone after; a call's inclusive cost on the line after `calls=`, which is not the caller's own.
PROFILE = """# callgrind format
version: 1
positions: line
events: Ir

ob=(1) /usr/lib/x86_64-linux-gnu/libc.so.6
fl=(1) ???
fn=(1) memcpy
0 500

ob=(2) /opt/meshproxy
fl=(2) ???
fn=(2) $s9ProxyHTTP6parseryyF
0 40
cob=(1)
cfn=(1)
calls=3 0
0 900
0 2
cob=(3) /opt/other
cfn=(3) elsewhere
calls=1 0
0 70
fn=(4) $s9ProxyHTTP7encoderyyF'2
0 15

ob=(3)
fl=(3) ???
fn=(3)
0 7

ob=(2)
fl=(2)
fn=(4)
0 5
fn=(2)
0 8
"""


def test_self_costs_counts_each_function_of_the_binary_once_without_its_calls(tmp_path):
    profile = tmp_path / "profile.callgrind"
    profile.write_text(PROFILE)
    costs = load_generator().self_costs(profile, "/opt/meshproxy")
    assert costs == {"$s9ProxyHTTP6parseryyF": 50, "$s9ProxyHTTP7encoderyyF": 20}


def test_committed_order_names_the_data_path_hottest_first():
    names = (ROOT / "scripts" / "meshproxy.order").read_text().splitlines()
    assert len(names) > 1000
    assert len(set(names)) == len(names)
    assert all(name and " " not in name for name in names), "names must be the linker's, not demangled"
    # The request parser and the connection manager run for every request: among the hot functions.
    hot = names[: len(names) // 4]
    assert any("HTTP1RequestParser" in name for name in hot)
    assert any("HTTPConnectionManager" in name for name in hot)


def test_release_flags_link_in_the_committed_order_from_bash_and_sh():
    for shell, command in (("bash", "source scripts/release-flags.sh"), ("sh", ". scripts/release-flags.sh")):
        flags = subprocess.run([shell, "-c", f'{command}; printf %s "$RELEASE_FLAGS"'], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
        ordering = [flag for flag in flags.split() if flag.startswith("--symbol-ordering-file=")]
        assert len(ordering) == 1, flags
        assert Path(ordering[0].split("=", 1)[1]) == ROOT / "scripts" / "meshproxy.order"
        assert "-function-sections" in flags.split()
