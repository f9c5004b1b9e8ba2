"""A loopback OpenTelemetry collector: OTLP over gRPC (TraceService/Export, with grpcio) and over
HTTP (POST /v1/traces, protobuf), keeping every span it receives with its resource attributes."""
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from loopback_servers import read_body


class OTLPCollector:
    def __init__(self):
        self.spans = []  # (resource attributes as a dict, scope name, span)
        self.lock = threading.Lock()
        collector = self

        class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                collector.add(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self.grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), self.grpc_server)
        self.grpc_port = self.grpc_server.add_insecure_port("127.0.0.1:0")
        self.grpc_server.start()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = read_body(self)
                collector.http_headers.append(dict(self.headers))
                request = trace_service_pb2.ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.add(request, path=self.path, content_type=self.headers.get("Content-Type"))
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.http_server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http_port = self.http_server.server_address[1]
        self.http_requests = []
        self.http_headers = []
        threading.Thread(target=self.http_server.serve_forever, daemon=True).start()

    def add(self, request, path=None, content_type=None):
        with self.lock:
            if path is not None:
                self.http_requests.append((path, content_type))
            for resource_spans in request.resource_spans:
                resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append((resource, scope_spans.scope.name, span))

    def close(self):
        self.grpc_server.stop(0)
        self.http_server.shutdown()
        self.http_server.server_close()
