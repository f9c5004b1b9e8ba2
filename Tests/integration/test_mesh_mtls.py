"""meshd as the mesh's certificate authority: each proxy gets a SPIFFE certificate for the identity its node
metadata names (secret `default`) and the root (`ROOTCA`) over SDS, and two sidecars talk mTLS with them.
Run through meshproxy and real Envoy 1.40 alike, with certificate rotation under load, plaintext refused on
the mTLS port, and a proxy that cannot obtain another identity's certificate."""
import json
import socket
import ssl
import threading
import time

import pytest

from conftest import ENVOY, MESHPROXY, Process, ads_bootstrap, free_port, get, wait_ready
from pki import CA
from test_meshd_envoy import Meshd, wait_until

TRUST = "cluster.local"
FRONTEND_ID = f"spiffe://{TRUST}/ns/shop/sa/frontend"
BACKEND_ID = f"spiffe://{TRUST}/ns/shop/sa/backend"
SDS = "sds_config: { ads: {}, resource_api_version: V3 }"


def tls_context(kind, san):
    """A TLS context from meshd's SDS secrets (Istio's names), checking the peer's SPIFFE ID."""
    extra = "          require_client_certificate: true\n" if kind == "DownstreamTlsContext" else ""
    return f"""        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.{kind}
{extra}          common_tls_context:
            tls_certificate_sds_secret_configs: [{{ name: default, {SDS} }}]
            combined_validation_context:
              default_validation_context:
                match_typed_subject_alt_names: [{{ san_type: URI, matcher: {{ exact: "{san}" }} }}]
              validation_context_sds_secret_config: {{ name: ROOTCA, {SDS} }}
"""


def hcm(prefix, route):
    return f"""      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {prefix}
          http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes: [{{ match: {{ prefix: / }}, {route} }}]
"""


def write_config(config_dir, inbound_port, outbound_port):
    backend = config_dir / "nodes" / "backend"
    frontend = config_dir / "nodes" / "frontend"
    backend.mkdir(parents=True)
    frontend.mkdir(parents=True)
    (backend / "inbound.yaml").write_text(f"""
"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: inbound
address: {{ socket_address: {{ address: 127.0.0.1, port_value: {inbound_port} }} }}
filter_chains:
- transport_socket:
{tls_context("DownstreamTlsContext", FRONTEND_ID)}  filters:
{hcm("inbound", 'direct_response: { status: 200, body: { inline_string: "backend says hi" } }')}""")
    (frontend / "outbound.yaml").write_text(f"""
"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: outbound
address: {{ socket_address: {{ address: 127.0.0.1, port_value: {outbound_port} }} }}
filter_chains:
- filters:
{hcm("outbound", "route: { cluster: backend }")}""")
    (frontend / "backend.yaml").write_text(f"""
"@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
name: backend
type: STATIC
connect_timeout: 2s
load_assignment: {{ cluster_name: backend, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {inbound_port} }} }} }} }}] }}] }}
transport_socket:
{tls_context("UpstreamTlsContext", BACKEND_ID)}""")


def bootstrap(meshd, admin, node_id, cluster, service_account):
    return ads_bootstrap(meshd.xds, admin, node_id, cluster, f"{{ NAMESPACE: shop, SERVICE_ACCOUNT: {service_account} }}")


def start(binary, workdir, meshd, node_id, cluster, service_account):
    admin = free_port()
    path = workdir / f"{node_id}.yaml"
    path.write_text(bootstrap(meshd, admin, node_id, cluster, service_account))
    args = [binary, "-c", str(path), "--concurrency", "1"]
    if binary == ENVOY:
        args += ["--base-id", str(free_port()), "--log-level", "warning"]
    process = Process(args, workdir / f"{node_id}.log")
    wait_ready(admin, process, timeout=30)
    return process, admin


def peer(port, client_cert=None, client_key=None, ca=None):
    """The TLS server's certificate as Python's ssl module reads it (verified against `ca`)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(str(ca))
    if client_cert:
        context.load_cert_chain(str(client_cert), str(client_key))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert()


@pytest.fixture
def mesh(tmp_path):
    pki = CA(tmp_path / "pki", "mesh-root")
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    started = []
    yield pki, config_dir, started
    for process in reversed(started):
        process.stop()


@pytest.mark.parametrize("frontend_bin,backend_bin", [(MESHPROXY, MESHPROXY), (ENVOY, MESHPROXY), (MESHPROXY, ENVOY)],
                         ids=["meshproxy-meshproxy", "envoy-meshproxy", "meshproxy-envoy"])
def test_sidecars_talk_mtls_with_certificates_from_meshd(tmp_path, mesh, frontend_bin, backend_bin):
    pki, config_dir, started = mesh
    inbound, outbound = free_port(), free_port()
    write_config(config_dir, inbound, outbound)
    meshd = Meshd(tmp_path, config_dir, ["--ca-cert", str(pki.cert), "--ca-key", str(pki.key),
                                         "--workload-cert-ttl", "4s"])
    started.append(meshd.process)
    backend, _ = start(backend_bin, tmp_path, meshd, "backend-1", "backend", "backend")
    started.append(backend)
    frontend, frontend_admin = start(frontend_bin, tmp_path, meshd, "frontend-1", "frontend", "frontend")
    started.append(frontend)

    wait_until(lambda: get(outbound, "/", timeout=3)[0] == 200, timeout=20, what="frontend -> backend over mTLS")
    assert get(outbound, "/")[2] == b"backend says hi"

    # Both proxies show the SDS secrets in /config_dump, the private key redacted.
    dump = get(frontend_admin, "/config_dump?resource=dynamic_active_secrets")[2].decode()
    secrets = {entry["name"]: entry for entry in json.loads(dump)["configs"]}
    assert set(secrets) == {"default", "ROOTCA"}
    assert secrets["default"]["secret"]["tls_certificate"]["private_key"] == {"inline_string": "[redacted]"}
    assert "PRIVATE KEY" not in dump

    # The backend presents its own SPIFFE identity, issued by meshd from the node metadata.
    client_cert, client_key = pki.issue("frontend-client", uris=[FRONTEND_ID])
    served = peer(inbound, client_cert, client_key, pki.cert)
    assert ("URI", BACKEND_ID) in served["subjectAltName"]
    first_serial = served["serialNumber"]

    # Plaintext, and TLS without a client certificate, are refused on the mTLS port.
    with socket.create_connection(("127.0.0.1", inbound), timeout=5) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        plain.settimeout(5)
        try:
            answer = plain.recv(100)
        except ConnectionResetError:
            answer = b""
        assert not answer.startswith(b"HTTP/1.1 200")
    with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
        peer_no_cert = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        peer_no_cert.check_hostname = False
        peer_no_cert.load_verify_locations(str(pki.cert))
        with socket.create_connection(("127.0.0.1", inbound), timeout=5) as raw:
            with peer_no_cert.wrap_socket(raw) as tls:
                tls.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                assert tls.recv(100) == b""  # TLS 1.3: the refusal arrives after the handshake
                raise ConnectionResetError("closed without an answer")

    # A 4 s TTL renews at 2 s: requests keep succeeding through rotations and the served serial changes.
    failures, successes = [], [0]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status, _, body = get(outbound, "/", timeout=5)
        if status == 200:
            successes[0] += 1
        else:
            failures.append((status, body))
        time.sleep(0.02)
    assert failures == []
    assert successes[0] > 20
    rotated = wait_until(lambda: peer(inbound, client_cert, client_key, pki.cert)["serialNumber"] != first_serial,
                         timeout=10, what="a renewed backend certificate")
    assert rotated


def test_a_proxy_gets_only_its_own_identity(tmp_path, mesh):
    pki, config_dir, started = mesh
    inbound, outbound = free_port(), free_port()
    write_config(config_dir, inbound, outbound)
    # A secret that only the frontend's node is served; a listener for backend nodes that asks for it.
    only = config_dir / "node-ids" / "frontend-1"
    only.mkdir(parents=True)
    cert, key = pki.issue("frontend-only", uris=[FRONTEND_ID])
    (only / "secret.yaml").write_text(f"""
"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
name: frontend-only
tls_certificate: {{ certificate_chain: {{ filename: {cert} }}, private_key: {{ filename: {key} }} }}
""")
    greedy = (config_dir / "nodes" / "backend" / "inbound.yaml").read_text()
    greedy = greedy.replace("name: inbound", "name: greedy").replace(f"port_value: {inbound}", f"port_value: {free_port()}")
    greedy = greedy.replace("[{ name: default,", "[{ name: frontend-only,")
    (config_dir / "nodes" / "backend" / "greedy.yaml").write_text(greedy)
    meshd = Meshd(tmp_path, config_dir, ["--ca-cert", str(pki.cert), "--ca-key", str(pki.key)])
    started.append(meshd.process)
    # An impostor in the backend's node cluster gets the backend's listener but its own identity, so
    # the frontend (which checks for the backend's SPIFFE ID) refuses it.
    impostor, _ = start(MESHPROXY, tmp_path, meshd, "impostor-1", "backend", "impostor")
    started.append(impostor)
    frontend, frontend_admin = start(MESHPROXY, tmp_path, meshd, "frontend-1", "frontend", "frontend")
    started.append(frontend)
    wait_until(lambda: get(outbound, "/", timeout=3)[0] == 503, timeout=20, what="503 from the frontend")
    client_cert, client_key = pki.issue("frontend-client", uris=[FRONTEND_ID])
    served = peer(inbound, client_cert, client_key, pki.cert)
    assert ("URI", f"spiffe://{TRUST}/ns/shop/sa/impostor") in served["subjectAltName"]

    def san_failures():
        # A 503 also comes while the mesh converges (no secret yet, a listener not up): each request tries a
        # handshake, and the one that meets the impostor's certificate counts here.
        get(outbound, "/", timeout=3)
        stats = json.loads(get(frontend_admin, "/stats?format=json")[2])
        return next((s["value"] for s in stats["stats"] if s.get("name") == "cluster.backend.ssl.fail_verify_san"), 0)

    wait_until(lambda: san_failures() >= 1, timeout=20, what="the frontend refusing the impostor's SAN")
    # Asking for the frontend's secret gets nothing, and meshd says so.
    wait_until(lambda: "node impostor-1 (backend) asked for secret 'frontend-only', which is not served to it"
               in meshd.process.output(), timeout=10, what="meshd's refusal")


def test_the_mtls_example_runs_as_documented(tmp_path, raw):
    """deploy/examples/mtls with its ports moved: a call through both sidecars reaches the app with the
    frontend's identity in x-forwarded-client-cert, and the backend's RBAC and TLS refuse anyone else."""
    import shutil
    from conftest import ROOT
    example = ROOT / "deploy/examples/mtls"
    inbound, outbound = free_port(), free_port()
    config_dir = tmp_path / "mtls-config"
    shutil.copytree(example / "meshd", config_dir)
    for path in config_dir.rglob("*.yaml"):
        text = path.read_text().replace("port_value: 15443", f"port_value: {inbound}")
        text = text.replace("port_value: 15080", f"port_value: {outbound}").replace("port_value: 8000", f"port_value: {raw.port}")
        path.write_text(text)
    started = []
    try:
        meshd = Meshd(tmp_path, config_dir, ["--state-dir", str(tmp_path / "state")])
        started.append(meshd.process)
        admins = {}
        for side in ("backend", "frontend"):
            admins[side] = free_port()
            text = (example / f"{side}.yaml").read_text().replace("port_value: 18000", f"port_value: {meshd.xds}")
            text = text.replace("port_value: 9901", f"port_value: {admins[side]}").replace("port_value: 9902", f"port_value: {admins[side]}")
            path = tmp_path / f"example-{side}.yaml"
            path.write_text(text)
            process = Process([MESHPROXY, "-c", str(path), "--concurrency", "1"], tmp_path / f"example-{side}.log")
            started.append(process)
            wait_ready(admins[side], process, timeout=30)
        wait_until(lambda: get(outbound, "/x", timeout=3)[0] == 200, timeout=20, what="a call through both sidecars")
        headers = dict((name.lower(), value) for name, value in raw.requests[-1][1])
        assert headers["x-forwarded-client-cert"].endswith(f";URI={FRONTEND_ID}")
        # Each hop's router sets the expected timeout; the second does not repeat the first's.
        assert [value for name, value in raw.requests[-1][1] if name.lower() == "x-envoy-expected-rq-timeout-ms"] == ["15000"]
        # A one-day certificate has 0 whole days left (1 within the second its validity was rounded in), and the
        # field is printed even when it is 0, as Envoy prints it.
        leaf = json.loads(get(admins["backend"], "/certs")[2])["certificates"][0]["cert_chain"][0]
        assert leaf["days_until_expiration"] in ("0", "1")
        # The root meshd made lives in its state directory; a client with another identity is refused by RBAC.
        root = CA.__new__(CA)
        root.dir, root.name = tmp_path / "state" / "ca", "root"
        root.cert, root.key = root.dir / "root-cert.pem", root.dir / "root-key.pem"
        stranger_cert, stranger_key = root.issue("stranger", uris=[f"spiffe://{TRUST}/ns/shop/sa/stranger"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations(str(root.cert))
        context.load_cert_chain(str(stranger_cert), str(stranger_key))
        with socket.create_connection(("127.0.0.1", inbound), timeout=5) as plain, context.wrap_socket(plain) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nhost: backend\r\nconnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 403") and answer.endswith(b"RBAC: access denied")
    finally:
        for process in reversed(started):
            process.stop()


def test_root_rotation_under_load_fails_no_request(tmp_path, mesh):
    """`meshd rotate-root`: proxies trust both roots first, then get certificates from the new one, and the old
    root leaves their trust bundle when its overlap ends; requests through the mTLS hop never fail."""
    import subprocess
    from test_meshd_envoy import MESHD
    _, config_dir, started = mesh
    state = tmp_path / "state"
    inbound, outbound = free_port(), free_port()
    write_config(config_dir, inbound, outbound)
    meshd = Meshd(tmp_path, config_dir, ["--state-dir", str(state), "--root-rotation-grace", "2s"])
    started.append(meshd.process)
    backend, backend_admin = start(MESHPROXY, tmp_path, meshd, "backend-1", "backend", "backend")
    started.append(backend)
    frontend, frontend_admin = start(MESHPROXY, tmp_path, meshd, "frontend-1", "frontend", "frontend")
    started.append(frontend)
    wait_until(lambda: get(outbound, "/", timeout=3)[0] == 200, timeout=20, what="mTLS through both sidecars")
    old_root = (state / "ca" / "root-cert.pem").read_text()

    def bundle_size():
        dump = json.loads(get(frontend_admin, "/config_dump?resource=dynamic_active_secrets")[2])
        root = next(entry for entry in dump["configs"] if entry["name"] == "ROOTCA")
        return root["secret"]["validation_context"]["trusted_ca"]["inline_string"].count("BEGIN CERTIFICATE")

    failures, successes, stop = [], [0], threading.Event()

    def load():
        while not stop.is_set():
            try:
                status, _, body = get(outbound, "/", timeout=5)
                if status == 200:
                    successes[0] += 1
                else:
                    failures.append((status, body))
            except OSError as error:
                failures.append(repr(error))
            time.sleep(0.01)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        done = subprocess.run([MESHD, "rotate-root", "--state-dir", str(state), "--root-overlap", "8s"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        new_root = state / "ca" / "root-cert.pem"
        assert new_root.read_text() != old_root
        wait_until(lambda: bundle_size() == 2, timeout=10, what="both roots trusted")
        # After the grace period the backend serves a certificate that verifies with the new root alone.
        client_dir = tmp_path / "client"
        subprocess.run([MESHD, "issue", "--state-dir", str(state), "--namespace", "shop", "--service-account",
                        "frontend", "--out-dir", str(client_dir)], check=True, capture_output=True, timeout=30)
        wait_until(lambda: _verifies(inbound, client_dir, new_root), timeout=15, what="the backend on the new root")
        wait_until(lambda: bundle_size() == 1, timeout=15, what="the old root's overlap to end")
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert failures == []
    assert successes[0] > 50


def _verifies(port, client_dir, root):
    try:
        peer(port, client_dir / "cert-chain.pem", client_dir / "key.pem", root)
        return True
    except (ssl.SSLError, OSError):
        return False
