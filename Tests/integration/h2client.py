"""A frame-level HTTP/2 client (the h2 library over a plain socket) for tests that need to control
flow-control windows, reset streams and watch for GOAWAY."""
import select
import socket
import time
from collections import defaultdict

import h2.config
import h2.connection
import h2.events
import h2.exceptions


class H2Client:
    def __init__(self, port, connection_window=16 << 20):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        # The server closed the connection (with or without a GOAWAY).
        self.closed = False
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        # A large connection window, so one stalled stream cannot starve the others of it.
        self.conn.increment_flow_control_window(connection_window)
        self.flush()
        self.data = defaultdict(bytearray)
        self.unacked = defaultdict(int)
        self.headers = {}
        self.trailers = {}
        self.ended = set()
        # Streams whose response ended on its HEADERS frame (a headers-only response).
        self.ended_on_headers = set()
        self.reset = set()
        self.reset_codes = {}
        self.goaway = None
        self.pending = bytearray()

    def flush(self):
        pending = self.conn.data_to_send()
        if pending:
            try:
                self.sock.sendall(pending)
            except (BrokenPipeError, ConnectionResetError):
                # The server closed the connection; what it sent before is still read by pump.
                self.closed = True

    def request(self, path, method="GET", headers=(), body=None, end_stream=True):
        """Opens a stream; without a body it ends with the headers unless `end_stream` is false (a body
        then follows through `send_within_window`)."""
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, [(":method", method), (":path", path), (":scheme", "http"),
                                        (":authority", "test"), *headers], end_stream=body is None and end_stream)
        if body is not None:
            self.conn.send_data(stream, body, end_stream=True)
        self.flush()
        return stream

    def send_within_window(self, stream, remaining):
        """Sends up to `remaining` bytes of body as the flow-control windows allow, ending the stream
        with its last byte; returns how many bytes it sent."""
        sent = 0
        while sent < remaining:
            size = min(self.conn.local_flow_control_window(stream), self.conn.max_outbound_frame_size, remaining - sent)
            if size <= 0:
                break
            sent += size
            self.conn.send_data(stream, b"y" * size, end_stream=sent == remaining)
        self.flush()
        return sent

    def cancel(self, stream):
        self.conn.reset_stream(stream)
        self.flush()

    def acknowledge(self, stream):
        if self.unacked[stream]:
            self.conn.acknowledge_received_data(self.unacked[stream], stream)
            self.unacked[stream] = 0
            self.flush()

    def pump(self, until, ack=(), timeout=10.0):
        """Reads frames until `until()` holds, acknowledging data of the streams in `ack` as it comes."""
        deadline = time.monotonic() + timeout
        while not until():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            readable, _, _ = select.select([self.sock], [], [], min(remaining, 0.2))
            if not readable:
                continue
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed = True
                return until()
            self.pending += chunk
            for event in self.frames():
                if isinstance(event, h2.events.TrailersReceived):
                    self.trailers[event.stream_id] = dict(event.headers)
                elif isinstance(event, h2.events.ResponseReceived):
                    self.headers[event.stream_id] = dict(event.headers)
                    if event.stream_ended is not None:
                        self.ended_on_headers.add(event.stream_id)
                elif isinstance(event, h2.events.DataReceived):
                    self.data[event.stream_id] += event.data
                    self.unacked[event.stream_id] += event.flow_controlled_length
                    if event.stream_id in ack:
                        self.acknowledge(event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.add(event.stream_id)
                elif isinstance(event, h2.events.StreamReset):
                    self.reset.add(event.stream_id)
                    self.reset_codes[event.stream_id] = event.error_code
                elif isinstance(event, h2.events.ConnectionTerminated):
                    self.goaway = event
            self.flush()
        return True

    def frames(self):
        """Events of each complete frame, fed one frame at a time so a GOAWAY is seen even when
        frames h2 refuses after it (NIO's closing PING) share its read."""
        events = []
        while len(self.pending) >= 9:
            total = 9 + int.from_bytes(self.pending[:3], "big")
            if len(self.pending) < total:
                break
            frame, self.pending = bytes(self.pending[:total]), self.pending[total:]
            try:
                events += self.conn.receive_data(frame)
            except h2.exceptions.ProtocolError:
                if self.goaway is None and not any(isinstance(e, h2.events.ConnectionTerminated) for e in events):
                    raise
                self.pending = bytearray()
        return events

    def close(self):
        self.sock.close()
