"""A small HTTP/1.1 upstream for integration tests: records what the proxy sent and how many
connections it opened, and serves chunked, streamed, slow (/slow?ms=N) and sink endpoints, and HEAD."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class RawUpstream:
    def __init__(self):
        self.requests = []  # (request line, [(name, value)], body length)
        self.connections = 0
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with upstream.lock:
                    upstream.connections += 1

            def log_message(self, *args):
                pass

            def read_body(self):
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    total = 0
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return total
                        remaining = size
                        while remaining:
                            remaining -= len(self.rfile.read(min(remaining, 1 << 16)))
                        self.rfile.readline()
                        total += size
                length = int(self.headers.get("Content-Length", "0"))
                remaining = length
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 16))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                return length - remaining

            def handle_any(self):
                body_length = self.read_body()
                with upstream.lock:
                    upstream.requests.append((self.requestline, list(self.headers.items()), body_length))
                path = self.path.split("?")[0]
                if self.command == "HEAD":
                    # The length a GET's body would have, and no body.
                    self.send_response(200)
                    self.send_header("Content-Length", "10")
                    self.end_headers()
                    return
                if path == "/chunked":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for part in (b"hello, ", b"chunked ", b"world"):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if path == "/slow":
                    time.sleep(int(self.path.split("ms=")[1]) / 1000)
                    self.send_response(200)
                    self.send_header("Content-Length", "4")
                    self.end_headers()
                    self.wfile.write(b"late")
                    return
                if path == "/big":
                    size = int(self.path.split("n=")[1])
                    self.send_response(200)
                    self.send_header("Content-Length", str(size))
                    self.end_headers()
                    block = b"x" * (1 << 16)
                    sent = 0
                    while sent < size:
                        n = min(len(block), size - sent)
                        self.wfile.write(block[:n])
                        sent += n
                    return
                reply = str(body_length).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            do_GET = do_POST = do_PUT = do_HEAD = handle_any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
