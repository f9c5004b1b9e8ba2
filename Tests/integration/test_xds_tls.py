"""meshd's ADS port over mutual TLS (--xds-mtls): proxies (meshproxy and Envoy 1.40) connect with a client
certificate `meshd issue` wrote, meshd certifies the identity that certificate proves rather than the one
their metadata claims, and a plaintext proxy is not served."""
import json
import subprocess
import time

import pytest

from conftest import ENVOY, MESHPROXY, Process, ads_bootstrap, free_port, get, wait_ready
from test_meshd_envoy import MESHD, Meshd, wait_until

LISTENER = """
"@type": type.googleapis.com/envoy.config.listener.v3.Listener
name: inbound
address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
filter_chains:
- transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      common_tls_context:
        tls_certificate_sds_secret_configs: [{{ name: default, sds_config: {{ ads: {{}}, resource_api_version: V3 }} }}]
  filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: inbound
      http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
      route_config:
        virtual_hosts: [{{ name: v, domains: ["*"], routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200 }} }}] }}]
"""


def bootstrap(xds_port, admin, node_id, certs=None):
    """A proxy claiming to be shop/impostor; with `certs`, its xDS channel is mTLS with the files `meshd issue` wrote."""
    tls = "" if certs is None else f"""    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: meshd
        common_tls_context:
          tls_certificates:
          - certificate_chain: {{ filename: {certs}/cert-chain.pem }}
            private_key: {{ filename: {certs}/key.pem }}
          validation_context: {{ trusted_ca: {{ filename: {certs}/root-cert.pem }} }}
"""
    return ads_bootstrap(xds_port, admin, node_id, "c", "{ NAMESPACE: shop, SERVICE_ACCOUNT: impostor }", tls)


def mtls_meshd(tmp_path, started):
    """meshd with --xds-mtls serving LISTENER, and a frontend bootstrap certificate from `meshd issue`:
    (meshd, certificate directory, the listener's port)."""
    state, certs = tmp_path / "state", tmp_path / "certs"
    done = subprocess.run([MESHD, "issue", "--state-dir", str(state), "--namespace", "shop",
                           "--service-account", "frontend", "--out-dir", str(certs)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "spiffe://cluster.local/ns/shop/sa/frontend" in done.stdout
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    inbound = free_port()
    (config_dir / "listener.yaml").write_text(LISTENER.format(port=inbound))
    meshd = Meshd(tmp_path, config_dir, ["--state-dir", str(state), "--xds-mtls"])
    started.append(meshd.process)
    return meshd, certs, inbound


def start(binary, tmp_path, name, text, wait=True):
    admin = int(text.split("port_value: ")[-1].split(" ")[0])
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    args = [binary, "-c", str(path), "--concurrency", "1"]
    if binary == ENVOY:
        args += ["--base-id", str(free_port()), "--log-level", "warning"]
    process = Process(args, tmp_path / f"{name}.log")
    if wait:
        wait_ready(admin, process, timeout=30)
    return process, admin


@pytest.mark.parametrize("binary,name", [(MESHPROXY, "meshproxy"), (ENVOY, "envoy")])
def test_proxies_reach_meshd_over_mtls_and_get_the_identity_their_certificate_proves(tmp_path, binary, name):
    started = []
    try:
        meshd, certs, _ = mtls_meshd(tmp_path, started)
        proxy, admin = start(binary, tmp_path, f"xds-mtls-{name}", bootstrap(meshd.xds, free_port(), f"{name}-1", certs))
        started.append(proxy)
        wait_until(lambda: get(admin, "/certs")[0] == 200 and "spiffe" in get(admin, "/certs")[2].decode(),
                   timeout=20, what="a workload certificate over the mTLS xDS channel")
        certificate = json.loads(get(admin, "/certs")[2])["certificates"][0]["cert_chain"][0]
        assert certificate["subject_alt_names"] == [{"uri": "spiffe://cluster.local/ns/shop/sa/frontend"}]
        wait_until(lambda: "claims spiffe://cluster.local/ns/shop/sa/impostor" in meshd.process.output(), timeout=5,
                   what="meshd's warning about the claimed identity")

        # Without a client certificate, the same proxy is not served.
        plain, plain_admin = start(binary, tmp_path, f"xds-plain-{name}",
                                   bootstrap(meshd.xds, free_port(), f"{name}-2"), wait=False)
        started.append(plain)
        time.sleep(2)
        stats = {}
        try:
            status, _, body = get(plain_admin, "/stats?filter=control_plane.connected_state", timeout=2)
            stats = dict(line.split(": ") for line in body.decode().splitlines() if ": " in line)
        except OSError:
            pass
        assert stats.get("control_plane.connected_state") == "0"
        assert not any(p["node_id"] == f"{name}-2" for p in meshd.syncz()["proxies"])
    finally:
        for process in reversed(started):
            process.stop()


def test_meshproxy_makes_its_key_and_has_meshd_certify_it(tmp_path):
    """--workload-cert-from-csr: meshproxy asks meshd's IstioCertificateService to sign a key it made, for the
    identity its xDS client certificate proves; the certificate serves its TLS listener. A CSR for another
    identity is refused with PERMISSION_DENIED."""
    import grpc
    started = []
    try:
        meshd, certs, inbound = mtls_meshd(tmp_path, started)
        admin = free_port()
        path = tmp_path / "csr.yaml"
        path.write_text(bootstrap(meshd.xds, admin, "csr-1", certs))
        proxy = Process([MESHPROXY, "-c", str(path), "--concurrency", "1", "--workload-cert-from-csr"],
                        tmp_path / "csr.log")
        started.append(proxy)
        wait_ready(admin, proxy, timeout=30)
        wait_until(lambda: "spiffe" in get(admin, "/certs")[2].decode(), timeout=20, what="the CSR-certified certificate")
        leaf = json.loads(get(admin, "/certs")[2])["certificates"][0]["cert_chain"][0]
        assert leaf["subject_alt_names"] == [{"uri": "spiffe://cluster.local/ns/shop/sa/frontend"}]
        bootstrap_serial = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", str(certs / "cert-chain.pem")],
                                          capture_output=True, text=True, check=True).stdout.split("=")[1].strip().lower()
        assert leaf["serial_number"] != bootstrap_serial.lstrip("0")
        assert "signed a CSR for spiffe://cluster.local/ns/shop/sa/frontend" in meshd.process.output()
        dump = json.loads(get(admin, "/config_dump?resource=dynamic_active_secrets")[2])
        assert [(entry["name"], entry["version_info"]) for entry in dump["configs"]] == [("default", "local")]
        done = subprocess.run(["curl", "-sS", "--max-time", "5", "--cacert", str(certs / "root-cert.pem"), "-k",
                               "-o", "/dev/null", "-w", "%{http_code}", f"https://127.0.0.1:{inbound}/"],
                              capture_output=True, text=True, timeout=15)
        assert done.stdout == "200"

        # Someone holding the frontend's certificate may not have another identity certified.
        key = tmp_path / "other.key"
        subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(key)], check=True)
        csr = subprocess.run(["openssl", "req", "-new", "-key", str(key), "-subj", "/",
                              "-addext", "subjectAltName=URI:spiffe://cluster.local/ns/shop/sa/admin"],
                             capture_output=True, check=True).stdout
        credentials = grpc.ssl_channel_credentials(root_certificates=(certs / "root-cert.pem").read_bytes(),
                                                   private_key=(certs / "key.pem").read_bytes(),
                                                   certificate_chain=(certs / "cert-chain.pem").read_bytes())
        request = b"\x0a" + _varint(len(csr)) + csr
        with grpc.secure_channel(f"127.0.0.1:{meshd.xds}", credentials,
                                 options=[("grpc.ssl_target_name_override", "localhost")]) as channel:
            call = channel.unary_unary("/istio.v1.auth.IstioCertificateService/CreateCertificate")
            with pytest.raises(grpc.RpcError) as refused:
                call(request, timeout=10)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        for process in reversed(started):
            process.stop()


def _varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
