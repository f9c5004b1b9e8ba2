"""Small socket servers on 127.0.0.1 for integration tests: a base that accepts connections on a thread each,
and a keep-alive HTTP/1.1 responder that answers every request with one status in one write (quick enough
for hundreds of requests: no delayed-ACK stalls), counting them."""
import socket
import threading


class LoopbackServer:
    """Listens on 127.0.0.1 (a free port) and calls `handle(conn)` on a thread per connection."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        conn.close()

    @staticmethod
    def read_head(conn, pending=b""):
        """Reads until the end of a request or response head: (head, the bytes after it), or None at EOF."""
        while b"\r\n\r\n" not in pending:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            pending += chunk
        return tuple(pending.split(b"\r\n\r\n", 1))

    def close(self):
        self.sock.close()


class KeepAliveResponder(LoopbackServer):
    """Answers every keep-alive request with `status` and an empty body, counting requests. A request's
    content-length body is read whole before the answer, so the proxy has sent all of it by then."""

    def __init__(self, status=200):
        self.status = status
        self.count = 0
        super().__init__()

    def handle(self, conn):
        with conn:
            pending = b""
            while (read := self.read_head(conn, pending)) is not None:
                head, pending = read
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
                               if line.lower().startswith(b"content-length:")), 0)
                while len(pending) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    pending += chunk
                pending = pending[length:]
                self.count += 1
                conn.sendall(self.response(head))

    def response(self, head):
        """The answer to a request with this head: `status` and an empty body."""
        return b"HTTP/1.1 %d X\r\ncontent-length: 0\r\n\r\n" % self.status


def read_body(handler):
    """The request body a BaseHTTPRequestHandler is reading, chunked or with a Content-Length."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        body = b""
        while (size := int(handler.rfile.readline().strip(), 16)) > 0:
            body += handler.rfile.read(size)
            handler.rfile.readline()
        handler.rfile.readline()
        return body
    return handler.rfile.read(int(handler.headers.get("Content-Length", "0")))
