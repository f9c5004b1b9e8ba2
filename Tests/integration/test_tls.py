"""TLS through Envoy 1.40 and meshproxy alike: a TLS listener (curl --cacert), ALPN choosing HTTP/2 or
HTTP/1.1, mTLS with require_client_certificate and SAN matching (fail_verify_* stats), filter chains
chosen by SNI with tls_inspector, certificates from static_resources.secrets, upstream TLS to a Python
TLS server with SNI, server SAN validation and a client certificate, and a key that does not match its
certificate refused at start."""
import json
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ENVOY, MESHPROXY, HCM_TYPE, free_port
from pki import CA

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]
TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
UPSTREAM_TLS_TYPE = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
CLIENT_ID = "spiffe://cluster.local/ns/default/sa/client"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    root = CA(directory, "root")
    other = CA(directory, "other")
    return {
        "root": root,
        "server": root.issue("server", dns=["localhost", "a.example.com"]),
        "b": root.issue("b", dns=["b.example.com"]),
        "client": root.issue("client", uris=[CLIENT_ID]),
        "wrongsan": root.issue("wrongsan", uris=["spiffe://cluster.local/ns/default/sa/other"]),
        "stranger": other.issue("stranger", uris=[CLIENT_ID]),
        "upstream": root.issue("upstream", dns=["backend.internal"]),
    }


def hcm(body, prefix="tls"):
    return f"""
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: {prefix}
          http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes: [{{ match: {{ prefix: / }}, direct_response: {{ status: 200, body: {{ inline_string: "{body}" }} }} }}]"""


def tls_socket(cert, key, extra="", common_extra=""):
    return f"""
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": {TLS_TYPE}
{extra}          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {{ filename: {cert} }}
              private_key: {{ filename: {key} }}
{common_extra}"""


def bootstrap(chains, listener_filters="", secrets=""):
    def make(listener, admin):
        return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: tls
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
{listener_filters}    filter_chains:{chains}
{secrets}"""
    return make


def curl(port, *args, host="localhost", path="/"):
    """curl over TLS to 127.0.0.1:port as `host`: (exit code, body, HTTP version)."""
    done = subprocess.run(["curl", "-sS", "--max-time", "5", "--resolve", f"{host}:{port}:127.0.0.1",
                           "-w", "\n%{http_version}", *args, f"https://{host}:{port}{path}"],
                          capture_output=True, text=True, timeout=15)
    body, _, version = done.stdout.rpartition("\n")
    return done.returncode, body, version


def ssl_stats(proxy):
    return {name.split(".ssl.", 1)[1]: int(value) for name, value in proxy.stats(".ssl.").items()
            if name.startswith("listener.") and value.isdigit()}


@pytest.mark.parametrize("binary,name", PROXIES)
def test_tls_listener_alpn_chooses_the_codec(launch, pki, binary, name):
    cert, key = pki["server"]
    proxy = launch(binary, bootstrap(f"""
    - filters:{hcm("secure")}{tls_socket(cert, key)}"""), f"tls-basic-{name}")
    ca = str(pki["root"].cert)
    assert curl(proxy.port, "--cacert", ca) == (0, "secure", "2")
    assert curl(proxy.port, "--cacert", ca, "--http1.1") == (0, "secure", "1.1")
    # Without the CA the proxy's certificate is not trusted.
    code, _, _ = curl(proxy.port)
    assert code == 60
    stats = ssl_stats(proxy)
    assert stats["handshake"] == 2
    assert stats["versions.TLSv1.3"] == 2
    assert stats["no_certificate"] == 2


@pytest.mark.parametrize("binary,name", PROXIES)
def test_mtls_requires_a_trusted_client_certificate_with_the_right_san(launch, pki, binary, name):
    cert, key = pki["server"]
    validation = f"""            validation_context:
              trusted_ca: {{ filename: {pki["root"].cert} }}
              match_typed_subject_alt_names:
              - san_type: URI
                matcher: {{ exact: "{CLIENT_ID}" }}
"""
    socket = tls_socket(cert, key, "          require_client_certificate: true\n", validation)
    proxy = launch(binary, bootstrap(f"""
    - filters:{hcm("mutual")}{socket}"""), f"tls-mtls-{name}")
    ca = str(pki["root"].cert)

    def with_cert(which):
        client_cert, client_key = pki[which]
        return curl(proxy.port, "--cacert", ca, "--cert", str(client_cert), "--key", str(client_key))

    assert with_cert("client")[:2] == (0, "mutual")
    assert curl(proxy.port, "--cacert", ca)[0] != 0
    assert with_cert("stranger")[0] != 0
    assert with_cert("wrongsan")[0] != 0
    stats = ssl_stats(proxy)
    assert stats["handshake"] == 1
    assert stats["fail_verify_no_cert"] == 1
    assert stats["fail_verify_error"] == 1
    assert stats["fail_verify_san"] == 1
    assert stats["no_certificate"] == 0


@pytest.mark.parametrize("binary,name", PROXIES)
def test_sni_chooses_the_filter_chain_and_its_certificate(launch, pki, binary, name):
    a_cert, a_key = pki["server"]
    b_cert, b_key = pki["b"]
    inspector = """    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector }
"""
    chains = f"""
    - filter_chain_match: {{ server_names: [a.example.com] }}
      filters:{hcm("chain a", "a")}{tls_socket(a_cert, a_key)}
    - filter_chain_match: {{ server_names: ["*.example.com"] }}
      filters:{hcm("chain b", "b")}{tls_socket(b_cert, b_key)}
    - filter_chain_match: {{ transport_protocol: raw_buffer }}
      filters:{hcm("plaintext", "plain")}"""
    proxy = launch(binary, bootstrap(chains, inspector), f"tls-sni-{name}")
    ca = str(pki["root"].cert)
    assert curl(proxy.port, "--cacert", ca, host="a.example.com")[:2] == (0, "chain a")
    assert curl(proxy.port, "--cacert", ca, host="b.example.com")[:2] == (0, "chain b")
    # The wildcard chain's certificate is b.example.com's only: another name fails verification.
    assert curl(proxy.port, "--cacert", ca, host="c.example.com")[0] == 60
    status, _, body = proxy.get("/")
    assert (status, body) == (200, b"plaintext")
    # No chain for a TLS connection without a matching name: reset.
    assert curl(proxy.port, "--cacert", ca, host="localhost")[0] != 0
    assert int(proxy.stats("no_filter_chain_match")["listener.127.0.0.1_%d.no_filter_chain_match" % proxy.port]) == 1


@pytest.mark.parametrize("binary,name", PROXIES)
def test_certificate_from_a_static_secret(launch, pki, binary, name):
    cert, key = pki["server"]
    chain = f"""
    - filters:{hcm("from secret")}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": {TLS_TYPE}
          common_tls_context:
            tls_certificate_sds_secret_configs: [{{ name: server_cert }}]"""
    secrets = f"""  secrets:
  - name: server_cert
    tls_certificate:
      certificate_chain: {{ filename: {cert} }}
      private_key: {{ filename: {key} }}
"""
    proxy = launch(binary, bootstrap(chain, secrets=secrets), f"tls-secret-{name}")
    assert curl(proxy.port, "--cacert", str(pki["root"].cert), "--http1.1") == (0, "from secret", "1.1")


@pytest.mark.parametrize("binary,name", PROXIES)
def test_a_key_that_does_not_match_its_certificate_is_refused(workdir, pki, binary, name):
    cert, _ = pki["server"]
    _, other_key = pki["client"]
    config = workdir / f"tls-mismatch-{name}.yaml"
    config.write_text(bootstrap(f"""
    - filters:{hcm("never")}{tls_socket(cert, other_key)}""")(free_port(), free_port()))
    args = [binary, "--mode", "validate", "-c", str(config)]
    if binary == ENVOY:
        args += ["--base-id", str(free_port())]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    if binary == MESHPROXY:
        assert "private key does not match the certificate chain" in done.stdout + done.stderr


class TLSUpstream:
    """An HTTPS upstream that answers with the SNI it was asked for and the client certificate's URI."""

    def __init__(self, cert, key, client_ca=None):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        if client_ca:
            context.load_verify_locations(str(client_ca))
            context.verify_mode = ssl.CERT_REQUIRED
        seen = {"sni": []}

        def remember(sock, server_name, ctx):
            seen["sni"].append(server_name)
            sock.mesh_sni = server_name  # this connection's own name, for the response
        context.sni_callback = remember
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                peer = self.connection.getpeercert() or {}
                uris = [value for kind, value in peer.get("subjectAltName", ()) if kind == "URI"]
                body = json.dumps({"sni": getattr(self.connection, "mesh_sni", None), "client": uris}).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def upstream_bootstrap(upstream_port, upstream_tls):
    def make(listener, admin):
        return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: plain
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: plain
          http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes: [{{ match: {{ prefix: / }}, route: {{ cluster: backend }} }}]
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 2s
    load_assignment: {{ cluster_name: backend, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream_port} }} }} }} }}] }}] }}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": {UPSTREAM_TLS_TYPE}
{upstream_tls}"""
    return make


@pytest.mark.parametrize("binary,name", PROXIES)
def test_upstream_mtls_with_sni_and_server_san_validation(launch, pki, binary, name):
    cert, key = pki["upstream"]
    client_cert, client_key = pki["client"]
    upstream = TLSUpstream(cert, key, client_ca=pki["root"].cert)
    try:
        tls = f"""        sni: backend.internal
        common_tls_context:
          tls_certificates:
          - certificate_chain: {{ filename: {client_cert} }}
            private_key: {{ filename: {client_key} }}
          validation_context:
            trusted_ca: {{ filename: {pki["root"].cert} }}
            match_typed_subject_alt_names: [{{ san_type: DNS, matcher: {{ exact: backend.internal }} }}]
"""
        proxy = launch(binary, upstream_bootstrap(upstream.port, tls), f"tls-upstream-{name}")
        status, _, body = proxy.get("/")
        assert status == 200
        assert json.loads(body) == {"sni": "backend.internal", "client": [CLIENT_ID]}
        stats = proxy.stats("cluster.backend.ssl.")
        assert int(stats["cluster.backend.ssl.handshake"]) >= 1

        # The same upstream under a SAN it does not carry: the handshake fails, the request gets a 503.
        wrong = tls.replace("exact: backend.internal }", "exact: elsewhere.internal }")
        other = launch(binary, upstream_bootstrap(upstream.port, wrong), f"tls-upstream-wrong-{name}")
        status, _, body = other.get("/")
        assert status == 503
        assert body.startswith(b"upstream connect error or disconnect/reset before headers")
        assert int(other.stats("cluster.backend.ssl.")["cluster.backend.ssl.fail_verify_san"]) >= 1
    finally:
        upstream.close()


def test_certs_admin_output_matches_envoy(launch, pki):
    """/certs lists every TLS context's CA and leaf with serial, SANs and validity, exactly as Envoy does."""
    cert, key = pki["server"]
    validation = f"""            validation_context:
              trusted_ca: {{ filename: {pki["root"].cert} }}
"""
    socket = tls_socket(cert, key, "", validation)
    outputs = []
    for binary, name in PROXIES:
        proxy = launch(binary, bootstrap(f"""
    - filters:{hcm("certs")}{socket}"""), f"tls-certs-{name}")
        status, text = proxy.admin_get("/certs")
        assert status == 200
        outputs.append(json.loads(text))
    # Whole days left truncate: a certificate made this second may show 30 on one and 29 on the other.
    for output in outputs:
        for entry in output["certificates"][0]["ca_cert"] + output["certificates"][0]["cert_chain"]:
            assert entry.pop("days_until_expiration") in ("29", "30")
    envoy, meshproxy = outputs
    assert meshproxy == envoy
    leaf = meshproxy["certificates"][0]["cert_chain"][0]
    assert leaf["path"] == str(cert)
    assert leaf["subject_alt_names"] == [{"dns": "localhost"}, {"dns": "a.example.com"}]


def mtls_to_upstream(cert, key, ca, upstream_port, hcm_extra, log_path):
    """A mutual-TLS listener routing to a plain upstream, with `hcm_extra` HCM fields and an access log."""
    fmt = ("%DOWNSTREAM_PEER_URI_SAN%|%DOWNSTREAM_LOCAL_URI_SAN%|%DOWNSTREAM_PEER_SUBJECT%|%DOWNSTREAM_TLS_VERSION%|"
           "%DOWNSTREAM_PEER_FINGERPRINT_256%|%REQ(:SCHEME)%\\n")

    def make(listener, admin):
        return f"""
admin: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }} }}
static_resources:
  listeners:
  - name: tls
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listener} }} }}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": {TLS_TYPE}
          common_tls_context:
            tls_certificates: [{{ certificate_chain: {{ filename: {cert} }}, private_key: {{ filename: {key} }} }}]
            validation_context: {{ trusted_ca: {{ filename: {ca} }} }}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM_TYPE}
          stat_prefix: xfcc
{hcm_extra}          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log_path}
              log_format: {{ text_format_source: {{ inline_string: "{fmt}" }} }}
          http_filters: [{{ name: envoy.filters.http.router, typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }} }}]
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes: [{{ match: {{ prefix: / }}, route: {{ cluster: up }} }}]
  clusters:
  - name: up
    type: STATIC
    load_assignment: {{ cluster_name: up, endpoints: [{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream_port} }} }} }} }}] }}] }}
"""
    return make


@pytest.mark.parametrize("mode", ["SANITIZE_SET", "APPEND_FORWARD", "SANITIZE"])
def test_forwarded_client_cert_and_tls_access_log_match_envoy(launch, pki, raw, workdir, mode):
    """x-forwarded-client-cert as forward_client_cert_details says, x-forwarded-proto https and the
    %DOWNSTREAM_*% TLS operators, compared with Envoy 1.40 on the same mTLS connection."""
    import time
    cert, key = pki["server"]
    client_cert, client_key = pki["client"]
    extra = (f"          forward_client_cert_details: {mode}\n"
             "          set_current_client_cert_details: { subject: true, uri: true, dns: true }\n")
    seen = {}
    for binary, name in PROXIES:
        log_path = workdir / f"xfcc-{mode}-{name}.log"
        proxy = launch(binary, mtls_to_upstream(cert, key, pki["root"].cert, raw.port, extra, log_path),
                       f"tls-xfcc-{mode}-{name}", extra_args=("--file-flush-interval-msec", "100"))
        before = len(raw.requests)
        code, _, _ = curl(proxy.port, "--cacert", str(pki["root"].cert), "--cert", str(client_cert),
                          "--key", str(client_key), "--http1.1", "-H", "x-forwarded-client-cert: By=spoofed;Hash=00")
        assert code == 0
        headers = dict((n.lower(), v) for n, v in raw.requests[before][1])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (log_path.exists() and log_path.read_text().strip()):
            time.sleep(0.05)
        seen[name] = (headers.get("x-forwarded-client-cert"), headers.get("x-forwarded-proto"),
                      log_path.read_text().strip())
    assert seen["meshproxy"] == seen["envoy"]
    xfcc, proto, log_line = seen["meshproxy"]
    assert proto == "https"
    if mode == "SANITIZE":
        assert xfcc is None
    else:
        assert f"URI={CLIENT_ID}" in xfcc
        assert xfcc.startswith("By=spoofed;Hash=00,") == (mode == "APPEND_FORWARD")
    assert log_line.startswith(CLIENT_ID + "|-|")
    assert "|TLSv1.3|" in log_line


def dns_upstream_bootstrap(upstream_port, upstream_tls):
    """upstream_bootstrap's cluster, but LOGICAL_DNS on `localhost`, so the host has a name."""
    inner = upstream_bootstrap(upstream_port, upstream_tls)

    def make(listener, admin):
        text = inner(listener, admin).replace("type: STATIC", "type: LOGICAL_DNS\n    dns_lookup_family: V4_ONLY")
        return text.replace("address: 127.0.0.1, port_value: %d" % upstream_port, "address: localhost, port_value: %d" % upstream_port)
    return make


@pytest.mark.parametrize("binary,name", PROXIES)
def test_upstream_auto_host_sni_and_san_validation(launch, pki, binary, name):
    tls = f"""        auto_host_sni: true
        auto_sni_san_validation: true
        common_tls_context:
          validation_context: {{ trusted_ca: {{ filename: {pki["root"].cert} }} }}
"""
    good = TLSUpstream(*pki["server"])  # DNS SANs localhost, a.example.com
    wrong = TLSUpstream(*pki["upstream"])  # backend.internal only
    try:
        proxy = launch(binary, dns_upstream_bootstrap(good.port, tls), f"tls-autosni-{name}")
        status, _, body = proxy.get("/")
        assert status == 200
        assert json.loads(body)["sni"] == "localhost"
        other = launch(binary, dns_upstream_bootstrap(wrong.port, tls), f"tls-autosni-wrong-{name}")
        status, _, _ = other.get("/")
        assert status == 503
        assert wrong.seen["sni"] == ["localhost"]
    finally:
        good.close()
        wrong.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_auto_config_lets_alpn_choose_http2_or_http1_per_upstream(launch, pki, binary, name):
    """HttpProtocolOptions auto_config over TLS: a gRPC upstream that speaks h2 and an HTTPS upstream that offers only
    http/1.1 by ALPN, both served through one cluster configuration."""
    import grpc
    from grpc_echo import EchoServer
    cert, key = pki["server"]
    echo = EchoServer()
    secure_port = echo.server.add_secure_port(
        "127.0.0.1:0", grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())]))
    echo.start()
    http1 = TLSUpstream(cert, key)
    http1.server.socket.context.set_alpn_protocols(["http/1.1"])
    tls = f"""        common_tls_context:
          validation_context: {{ trusted_ca: {{ filename: {pki["root"].cert} }} }}
"""
    auto = """    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        auto_config: {}
"""

    def make_for(port):
        inner = upstream_bootstrap(port, tls)
        return lambda listener, admin: inner(listener, admin).replace("    transport_socket:\n", auto + "    transport_socket:\n", 1)

    try:
        to_grpc = launch(binary, make_for(secure_port), f"tls-auto-grpc-{name}")
        with grpc.insecure_channel(f"127.0.0.1:{to_grpc.port}") as channel:
            for _ in range(2):
                assert channel.unary_unary("/mesh.Echo/Unary")(b"over h2", timeout=5) == b"over h2"
        to_http1 = launch(binary, make_for(http1.port), f"tls-auto-h1-{name}")
        for _ in range(2):
            status, _, body = to_http1.get("/")
            assert status == 200
            assert json.loads(body)["client"] == []
    finally:
        echo.stop()
        http1.close()


@pytest.mark.parametrize("binary,name", PROXIES)
def test_auto_sni_from_the_request_host_with_san_validation(launch, pki, binary, name):
    """upstream_http_protocol_options auto_sni: each request's Host (port dropped) is the TLS server name,
    connections are pooled per name, and with auto_san_validation the server must carry that name."""
    upstream = TLSUpstream(*pki["server"])  # DNS SANs localhost, a.example.com
    tls = f"""        common_tls_context:
          validation_context: {{ trusted_ca: {{ filename: {pki["root"].cert} }} }}
"""
    options = """    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        upstream_http_protocol_options: { auto_sni: true, auto_san_validation: true }
        explicit_http_config: { http_protocol_options: {} }
"""
    inner = upstream_bootstrap(upstream.port, tls)
    try:
        proxy = launch(binary, lambda listener, admin: inner(listener, admin).replace(
            "    transport_socket:\n", options + "    transport_socket:\n", 1), f"tls-autosni-request-{name}")
        for host in ("a.example.com", "localhost:8443", "a.example.com"):
            status, _, body = proxy.get("/", headers={"Host": host})
            assert status == 200, host
            assert json.loads(body)["sni"] == host.split(":")[0]
        status, _, _ = proxy.get("/", headers={"Host": "elsewhere.example.com"})
        assert status == 503
        assert upstream.seen["sni"][-1] == "elsewhere.example.com"
    finally:
        upstream.close()


def sds_file_text(cert, key):
    return f"""resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: server_cert
  tls_certificate:
    certificate_chain: {{ inline_string: {json.dumps(cert.read_text())} }}
    private_key: {{ inline_string: {json.dumps(key.read_text())} }}
"""


def served_serial(port):
    import socket as sockets
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with sockets.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        return tls.getpeercert(binary_form=True)


@pytest.mark.parametrize("binary,name", PROXIES)
def test_certificate_from_an_sds_file_rotates_without_touching_open_connections(launch, pki, workdir, binary, name):
    import socket as sockets
    import time
    first_cert, first_key = pki["server"]
    second_cert, second_key = pki["b"]
    sds = workdir / f"sds-{name}.yaml"
    sds.write_text(sds_file_text(first_cert, first_key))
    chain = f"""
    - filters:{hcm("from file")}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": {TLS_TYPE}
          common_tls_context:
            tls_certificate_sds_secret_configs:
            - name: server_cert
              sds_config: {{ path_config_source: {{ path: {sds} }}, resource_api_version: V3 }}"""
    # Envoy requires a node id and cluster for any SDS source.
    proxy = launch(binary, bootstrap(chain), f"tls-sds-file-{name}",
                   extra_args=("--service-node", "sds-node", "--service-cluster", "sds"))
    first = served_serial(proxy.port)
    # A connection opened before the rotation keeps working after it.
    context = ssl.create_default_context(cafile=str(pki["root"].cert))
    context.check_hostname = False
    raw = sockets.create_connection(("127.0.0.1", proxy.port), timeout=5)
    held = context.wrap_socket(raw)
    try:
        temporary = sds.with_suffix(".tmp")
        temporary.write_text(sds_file_text(second_cert, second_key))
        temporary.replace(sds)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and served_serial(proxy.port) == first:
            time.sleep(0.1)
        assert served_serial(proxy.port) != first
        held.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        assert held.recv(4096).startswith(b"HTTP/1.1 200")
        assert held.getpeercert(binary_form=True) == first
    finally:
        held.close()
    # A key that does not match its certificate is refused; the rotated certificate keeps serving.
    rotated = served_serial(proxy.port)
    temporary.write_text(sds_file_text(first_cert, second_key))
    temporary.replace(sds)
    time.sleep(2.5)
    assert served_serial(proxy.port) == rotated
    assert curl(proxy.port, "--cacert", str(pki["root"].cert), "--http1.1", host="b.example.com")[:2] == (0, "from file")


@pytest.mark.parametrize("binary,name", PROXIES)
def test_openssl_s_client_sees_the_chain_the_sans_and_alpn(launch, pki, binary, name):
    cert, key = pki["server"]
    proxy = launch(binary, bootstrap(f"""
    - filters:{hcm("s_client")}{tls_socket(cert, key)}"""), f"tls-sclient-{name}")
    done = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{proxy.port}", "-servername", "localhost",
                           "-alpn", "h2,http/1.1", "-CAfile", str(pki["root"].cert), "-verify_return_error",
                           "-showcerts"], input=b"", capture_output=True, timeout=15)
    # s_client echoes whatever the server sent after the handshake, and with h2 chosen that is a binary SETTINGS frame.
    stdout = done.stdout.decode("utf-8", errors="replace")
    assert "ALPN protocol: h2" in stdout
    assert "Verify return code: 0 (ok)" in stdout
    leaf = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName"],
                          input=stdout[stdout.index("-----BEGIN CERTIFICATE-----"):], capture_output=True,
                          text=True, timeout=15).stdout
    assert "DNS:localhost, DNS:a.example.com" in leaf
