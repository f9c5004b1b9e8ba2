"""HTTP/2 at the frame level through the proxy (h2 library client): a stalled stream holds back only
itself, a client reset cancels the upstream request, and draining sends GOAWAY."""
import pytest

from conftest import ENVOY, MESHPROXY, post
from h2client import H2Client
from test_http2 import config

SIZE = 4 << 20




@pytest.mark.parametrize("binary,name", [(ENVOY, "envoy"), (MESHPROXY, "meshproxy")])
def test_a_slow_reader_stalls_only_its_own_stream(binary, name, raw, launch):
    proxy = launch(binary, config(raw.port), f"h2flow-{name}")
    client = H2Client(proxy.port)
    try:
        stalled = client.request(f"/big?n={SIZE}")
        flowing = client.request(f"/big?n={SIZE}")
        assert client.pump(lambda: flowing in client.ended, ack={flowing}), "the reading stream finished"
        assert len(client.data[flowing]) == SIZE
        assert stalled not in client.ended
        assert len(client.data[stalled]) <= 65535, "the stalled stream got no more than its window"
        client.acknowledge(stalled)
        assert client.pump(lambda: stalled in client.ended, ack={stalled}), "it resumes once read"
        assert len(client.data[stalled]) == SIZE

        cancelled = client.request(f"/big?n={64 << 20}")
        assert client.pump(lambda: len(client.data[cancelled]) > 0)
        client.cancel(cancelled)
        again = client.request("/after-reset")
        assert client.pump(lambda: again in client.ended, ack={again}), "the connection outlives the reset stream"
        assert client.headers[again][":status"] == "200"
    finally:
        client.close()
    assert int(proxy.stats("downstream_rq_rx_reset")["http.ingress_http.downstream_rq_rx_reset"]) == 1


def test_drain_listeners_sends_goaway(raw, launch):
    proxy = launch(MESHPROXY, config(raw.port), "h2goaway", extra_args=("--drain-time-s", "5"))
    client = H2Client(proxy.port)
    try:
        first = client.request("/before")
        assert client.pump(lambda: first in client.ended, ack={first})
        assert post(proxy.admin, "/drain_listeners?graceful")[0] == 200
        assert client.pump(lambda: client.goaway is not None), "GOAWAY on the open connection"
        assert client.goaway.error_code == 0
    finally:
        client.close()


def test_drain_listeners_without_graceful_stops_accepting(raw, launch):
    import socket
    import time

    proxy = launch(MESHPROXY, config(raw.port), "drain-now")
    assert proxy.get("/before")[0] == 200
    assert post(proxy.admin, "/drain_listeners")[0] == 200
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection(("127.0.0.1", proxy.port), timeout=1).close()
        except ConnectionRefusedError:
            break
        except ConnectionResetError:
            pass  # queued as the listening socket closed: the next attempt finds it gone
        assert time.monotonic() < deadline, "the listener still accepts"
        time.sleep(0.05)
    assert proxy.admin_get("/ready")[0] == 200, "the admin port stays up"
