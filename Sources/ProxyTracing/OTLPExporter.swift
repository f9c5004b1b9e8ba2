import Foundation
import NIOCore
import NIOHTTP1
import ProxyUpstream
import SwiftProtobuf
import XDSAPI

/// Sends finished spans to an OpenTelemetry collector cluster as OTLP `ExportTraceServiceRequest`s,
/// over gRPC (`grpc_service.envoy_grpc`, a unary `TraceService/Export`) or over HTTP
/// (`http_service`, POST of the protobuf). Requests go through the cluster's own pool on the report
/// loop, so the collector is an ordinary cluster with its stats; answers are not awaited.
public final class OTLPExporter: Sendable {
    public enum Transport: Sendable, Equatable {
        case grpc(cluster: String)
        /// `authority` is the URI's, sent as the Host.
        case http(cluster: String, authority: String, path: String)

        var cluster: String {
            switch self {
            case .grpc(let cluster), .http(let cluster, _, _): cluster
            }
        }
    }

    public static let grpcExportPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    public let transport: Transport
    private let batcher: SpanBatcher<Opentelemetry_Proto_Trace_V1_Span>

    /// `resource` attributes name the service and the exporter, as Envoy's do.
    public init(transport: Transport, serviceName: String, version: String, loop: any EventLoop,
                flushInterval: TimeAmount = .seconds(5)) {
        self.transport = transport
        let resource = Self.resource(serviceName: serviceName, version: version)
        let scope = Opentelemetry_Proto_Common_V1_InstrumentationScope.with {
            $0.name = "envoy"
            $0.version = version
        }
        let userAgent = "OTel-OTLP-Exporter-Envoy/\(version)"
        batcher = SpanBatcher(loop: loop, flushInterval: flushInterval) { spans, clusters in
            guard let cluster = clusters[transport.cluster] else { return }
            var scopeSpans = Opentelemetry_Proto_Trace_V1_ScopeSpans()
            scopeSpans.scope = scope
            scopeSpans.spans = spans
            var resourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans()
            resourceSpans.resource = resource
            resourceSpans.scopeSpans = [scopeSpans]
            var request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
            request.resourceSpans = [resourceSpans]
            guard let message: [UInt8] = try? request.serializedBytes() else { return }
            let (head, body) = Self.request(message, transport: transport, userAgent: userAgent)
            FireAndForgetRequest.send(head, body: [body], to: cluster, on: loop)
        }
    }

    public func update(clusters manager: ClusterManager) {
        batcher.update(clusters: manager)
    }

    func export(_ span: Opentelemetry_Proto_Trace_V1_Span) {
        batcher.add(span)
    }

    static func resource(serviceName: String, version: String) -> Opentelemetry_Proto_Resource_V1_Resource {
        var resource = Opentelemetry_Proto_Resource_V1_Resource()
        resource.attributes = [("telemetry.sdk.name", "envoy"), ("service.name", serviceName),
                               ("telemetry.sdk.language", "swift"), ("telemetry.sdk.version", version)].map { key, value in
            var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
            attribute.key = key
            attribute.value.stringValue = value
            return attribute
        }
        return resource
    }

    /// The export request's head and body: a gRPC message (length-prefixed, uncompressed) or the bare protobuf.
    static func request(_ message: [UInt8], transport: Transport, userAgent: String) -> (HTTPRequestHead, ByteBuffer) {
        var body = ByteBuffer()
        switch transport {
        case .grpc(let cluster):
            body.writeInteger(UInt8(0))
            body.writeInteger(UInt32(message.count))
            body.writeBytes(message)
            let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: grpcExportPath, headers: HTTPHeaders([
                ("host", cluster), ("content-type", "application/grpc"), ("te", "trailers"),
                ("user-agent", userAgent), ("content-length", String(body.readableBytes)),
            ]))
            return (head, body)
        case .http(_, let authority, let path):
            body.writeBytes(message)
            let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path, headers: HTTPHeaders([
                ("host", authority), ("content-type", "application/x-protobuf"), ("user-agent", userAgent),
                ("content-length", String(body.readableBytes)),
            ]))
            return (head, body)
        }
    }
}
