"""envoy.filters.http.rbac through Envoy 1.40 and meshproxy alike, on a TLS listener with optional client
certificates: an ALLOW policy by authenticated SPIFFE ID, method and path, an open health path, shadow rules
that only count, and the 403 `RBAC: access denied` with its response code details and stats."""
import time

import pytest

from conftest import ENVOY, MESHPROXY, HCM_TYPE
from test_tls import CLIENT_ID, TLS_TYPE, curl, pki  # noqa: F401  (pki is a fixture)

PROXIES = [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")]


def rbac_bootstrap(cert, key, ca, log_path):
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
          stat_prefix: authz
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log_path}
              log_format: {{ text_format_source: {{ inline_string: "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS%\\n" }} }}
          http_filters:
          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  frontend-reads:
                    permissions:
                    - and_rules:
                        rules:
                        - header: {{ name: ":method", string_match: {{ exact: GET }} }}
                        - url_path: {{ path: {{ prefix: /api/ }} }}
                    principals:
                    - authenticated: {{ principal_name: {{ exact: "{CLIENT_ID}" }} }}
                  health:
                    permissions: [{{ url_path: {{ path: {{ exact: /healthz }} }} }}]
                    principals: [{{ any: true }}]
              shadow_rules:
                action: DENY
                policies:
                  no-admin:
                    permissions: [{{ url_path: {{ path: {{ prefix: /admin }} }} }}]
                    principals: [{{ not_id: {{ direct_remote_ip: {{ address_prefix: 10.0.0.0, prefix_len: 8 }} }} }}]
          - name: envoy.filters.http.router
            typed_config: {{ "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }}
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - match: {{ prefix: /api/ }}
                direct_response: {{ status: 200, body: {{ inline_string: "api" }} }}
              - match: {{ path: /healthz }}
                direct_response: {{ status: 200, body: {{ inline_string: "ok" }} }}
"""
    return make


def test_rbac_decisions_stats_and_logs_match_envoy(launch, pki, workdir):
    cert, key = pki["server"]
    ca = str(pki["root"].cert)
    client = ["--cert", str(pki["client"][0]), "--key", str(pki["client"][1])]
    other = ["--cert", str(pki["wrongsan"][0]), "--key", str(pki["wrongsan"][1])]
    cases = [
        ("/api/items", client, []),
        ("/api/items", client, ["-X", "POST"]),
        ("/api/items", [], []),
        ("/api/items", other, []),
        ("/healthz", [], []),
        ("/admin", client, []),
        ("/missing", client, []),
    ]
    results = {}
    for binary, name in PROXIES:
        log_path = workdir / f"rbac-access-{name}.log"
        proxy = launch(binary, rbac_bootstrap(cert, key, ca, log_path), f"rbac-{name}",
                       extra_args=("--file-flush-interval-msec", "100"))
        outcomes = []
        for path, identity, extra in cases:
            done = curl(proxy.port, "--cacert", ca, "--http1.1", *identity, *extra, "-w", "|%{http_code}", path=path)
            # The helper splits off a last line; with our -w the whole output is that line.
            outcomes.append((path, done[2] if done[0] == 0 else f"curl {done[0]}"))
        stats = {key.split(".rbac.", 1)[1]: value for key, value in proxy.stats("http.authz.rbac.").items()}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(log_path.read_text().splitlines() if log_path.exists() else []) < len(cases):
            time.sleep(0.05)
        results[name] = (outcomes, stats, log_path.read_text().splitlines())
    assert results["meshproxy"] == results["envoy"]
    outcomes, stats, lines = results["meshproxy"]
    assert outcomes == [
        ("/api/items", "api|200"), ("/api/items", "RBAC: access denied|403"), ("/api/items", "RBAC: access denied|403"),
        ("/api/items", "RBAC: access denied|403"), ("/healthz", "ok|200"), ("/admin", "RBAC: access denied|403"),
        ("/missing", "RBAC: access denied|403"),
    ]
    assert stats == {"allowed": "2", "denied": "5", "shadow_allowed": "6", "shadow_denied": "1"}
    assert "/api/items 403 - rbac_access_denied_matched_policy[none]" in lines
