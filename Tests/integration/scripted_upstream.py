"""A small HTTP/1.1 upstream whose answers a test scripts: `respond(path)` returns (status, headers, body);
requests are counted per path."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedUpstream:
    def __init__(self, respond):
        self.counts = {}
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                upstream.counts[self.path] = upstream.counts.get(self.path, 0) + 1
                status, headers, body = respond(self.path)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
