"""Internal and external requests, through Envoy 1.40 and meshproxy alike: use_remote_address,
internal_address_config and the client's x-forwarded-for decide whether a request is internal; only an
internal request may steer retries and timeouts with x-envoy-* headers, and the upstream sees the same
x-forwarded-for, x-forwarded-proto, x-envoy-internal and x-envoy-external-address from both."""
import pytest

from conftest import ENVOY, MESHPROXY, get, http_bootstrap, static_cluster
from loopback_servers import KeepAliveResponder
from rawupstream import RawUpstream

INTERNAL_LOOPBACK = "          internal_address_config: { cidr_ranges: [{ address_prefix: 127.0.0.1, prefix_len: 32 }] }\n"
VARIANTS = {
    "default": "",
    "remote-address": "          use_remote_address: true\n",
    "remote-address-internal": "          use_remote_address: true\n" + INTERNAL_LOOPBACK,
    "xff-internal": "          internal_address_config: { cidr_ranges: [{ address_prefix: 10.0.0.0, prefix_len: 8 }] }\n",
}
CLIENT_XFF = [None, "10.1.2.3", "8.8.8.8, 10.1.2.3"]
CLAIMS = {"x-envoy-retry-on": "5xx", "x-envoy-max-retries": "2", "x-envoy-upstream-rq-timeout-ms": "900",
          "x-envoy-internal": "true", "x-envoy-external-address": "1.1.1.1",
          "x-envoy-expected-rq-timeout-ms": "77", "x-forwarded-proto": "https"}


def observe(binary, name, hcm, launch):
    """What the upstream saw of the forwarding headers for each client x-forwarded-for, and how many times a
    request that asks for two retries of a 503 reached its upstream."""
    seen, failing = RawUpstream(), KeepAliveResponder(status=503)
    try:
        proxy = launch(binary, lambda l, a: http_bootstrap(
            l, a, "            - { match: { prefix: /f }, route: { cluster: failing } }\n"
                  "            - { match: { prefix: / }, route: { cluster: seen } }\n",
            [static_cluster("seen", seen.port), static_cluster("failing", failing.port)], hcm_extra=hcm), name)
        headers = []
        tries = []
        for xff in CLIENT_XFF:
            sent = dict(CLAIMS, **({"x-forwarded-for": xff} if xff else {}))
            assert get(proxy.port, "/", headers=sent)[0] == 200
            headers.append({k.lower(): v for k, v in seen.requests[-1][1]
                            if k.lower().startswith("x-") and k.lower() != "x-request-id"})
            before = failing.count
            assert get(proxy.port, "/f", headers=sent)[0] == 503
            tries.append(failing.count - before)
        return headers, tries
    finally:
        seen.close()
        failing.close()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_meshproxy_sanitizes_and_trusts_as_envoy_does(variant, launch):
    envoy = observe(ENVOY, f"xff-{variant}-envoy", VARIANTS[variant], launch)
    mesh = observe(MESHPROXY, f"xff-{variant}-meshproxy", VARIANTS[variant], launch)
    assert mesh == envoy
    headers, tries = mesh
    internal = [h.get("x-envoy-internal") == "true" for h in headers]
    # Retries asked for by header happen exactly for internal requests.
    assert tries == [3 if i else 1 for i in internal]
    assert internal == {"default": [False, False, False], "remote-address": [False, False, False],
                        "remote-address-internal": [True, False, False],
                        "xff-internal": [False, True, False]}[variant]
    for seen, is_internal in zip(headers, internal):
        assert seen["x-envoy-expected-rq-timeout-ms"] == ("900" if is_internal else "15000")
        assert "x-envoy-retry-on" not in seen and "x-envoy-upstream-rq-timeout-ms" not in seen
