"""A gRPC echo service on grpcio's generic handlers (raw bytes, no generated code), for tests that
send gRPC through a proxy. Methods of /mesh.Echo/:

- Unary: echoes the request; request b"fail:<code>:<message>" aborts with that status (trailers-only).
- ServerStream: request b"<n>:<size>" streams n messages of size bytes.
- ClientStream: answers with the total length of what was sent, as ASCII.
- Bidi: echoes each message as it comes.
- Slow: sleeps the number of seconds in the request, then answers b"late".
- Trailers: echoes, with trailing metadata x-echo-trailer: t1.
- Flaky: fails with UNAVAILABLE the first N-1 calls for a key (request b"<key>:<n>"), then succeeds.
"""
import threading
import time
from concurrent import futures

import grpc


class EchoServer:
    def __init__(self):
        self.calls = {}
        self.lock = threading.Lock()
        self.seen_metadata = []
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            "Slow": grpc.unary_unary_rpc_method_handler(self.slow),
            "Trailers": grpc.unary_unary_rpc_method_handler(self.trailers),
            "Flaky": grpc.unary_unary_rpc_method_handler(self.flaky),
        }
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                                  options=[("grpc.max_receive_message_length", 8 << 20),
                                           ("grpc.max_send_message_length", 8 << 20)])
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("mesh.Echo", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def start(self):
        self.server.start()
        return self

    def stop(self):
        self.server.stop(grace=None)

    def unary(self, request, context):
        with self.lock:
            self.seen_metadata.append(dict(context.invocation_metadata()))
        if request.startswith(b"fail:"):
            _, code, message = request.decode().split(":", 2)
            context.abort(grpc.StatusCode[code], message)
        return request

    def server_stream(self, request, context):
        count, size = (int(x) for x in request.decode().split(":"))
        for i in range(count):
            yield bytes([65 + i % 26]) * size

    def client_stream(self, request_iterator, context):
        return str(sum(len(m) for m in request_iterator)).encode()

    def bidi(self, request_iterator, context):
        for message in request_iterator:
            yield message

    def slow(self, request, context):
        time.sleep(float(request.decode()))
        return b"late"

    def trailers(self, request, context):
        context.set_trailing_metadata((("x-echo-trailer", "t1"),))
        return request

    def flaky(self, request, context):
        key, needed = request.decode().split(":")
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            count = self.calls[key]
        if count < int(needed):
            context.abort(grpc.StatusCode.UNAVAILABLE, f"try {count}")
        return f"ok after {count}".encode()
