import Foundation
import NIOCore
import NIOHTTP1
import ProxyAccessLog
import ProxyCore
import ProxyUpstream
import XDSResource

/// The HCM's `tracing` with the Zipkin provider: B3 context carried upstream, and finished requests
/// turned into Zipkin v2 spans with Envoy's tags.
public final class ZipkinTracer: HTTPTracer {
    public enum SpanKind: String, Sendable { case server = "SERVER", client = "CLIENT" }

    public let sampling: TraceSampling
    public let kind: SpanKind
    public let sharedSpanContext: Bool
    public let traceID128: Bool
    public let reporter: ZipkinReporter
    /// `node_id` tag and the span's local service name (the node's cluster, as Envoy).
    public let nodeID: String
    public let serviceName: String
    public let zone: String

    public init(sampling: TraceSampling, kind: SpanKind, sharedSpanContext: Bool, traceID128: Bool,
                reporter: ZipkinReporter, nodeID: String, serviceName: String, zone: String = "") {
        self.nodeID = nodeID
        self.serviceName = serviceName
        self.zone = zone
        self.sampling = sampling
        self.kind = kind
        self.sharedSpanContext = sharedSpanContext
        self.traceID128 = traceID128
        self.reporter = reporter
    }

    public func start(_ headers: HTTPHeaders, random: () -> UInt64) -> RequestSpan {
        let decision = sampling.decide(headers, random: random)
        let incoming = TraceContext.extract(headers)
        let sampled = incoming?.sampled ?? (decision != .notTraced)
        if let incoming, incoming.hasIDs {
            if sharedSpanContext {
                return RequestSpan(context: incoming, sampled: sampled, decision: decision, shared: true)
            }
            var child = incoming
            child.parentID = incoming.spanID
            child.spanID = TraceContext.nonZero(random())
            return RequestSpan(context: child, sampled: sampled, decision: decision)
        }
        let id = TraceContext.nonZero(random())
        let context = TraceContext(traceIDHigh: traceID128 ? TraceContext.nonZero(random()) : 0, traceID: id, spanID: id)
        return RequestSpan(context: context, sampled: sampled, decision: decision, shared: true)
    }

    public func replacesHeader(_ name: String) -> Bool {
        name.hasPrefix("x-b3-") || name == "b3"
    }

    public func propagationHeaders(_ span: RequestSpan) -> [(String, String)] {
        span.context.b3Headers(sampled: span.sampled)
    }

    public func update(clusters: ClusterManager) {
        reporter.update(clusters: clusters)
    }

    public func finish(_ span: RequestSpan, entry: AccessLogEntry, durationMicros: Int64, localIP: String?) {
        guard span.sampled else { return }
        let start = Int64(entry.startTime.timeIntervalSince1970 * 1_000_000)
        let tags = SpanTags.of(entry, nodeID: nodeID, zone: zone)
        var json = "{\"traceId\":\"\(span.context.traceIDText)\",\"id\":\"\(TraceContext.hex(span.context.spanID))\""
        if let parent = span.context.parentID { json += ",\"parentId\":\"\(TraceContext.hex(parent))\"" }
        json += ",\"kind\":\"\(kind.rawValue)\",\"name\":"
        JSONText.appendQuoted(entry.authority, to: &json)
        json += ",\"timestamp\":\(start),\"duration\":\(max(1, durationMicros))"
        if span.shared { json += ",\"shared\":true" }
        json += ",\"localEndpoint\":{\"serviceName\":"
        JSONText.appendQuoted(serviceName, to: &json)
        if let localIP {
            json += localIP.contains(":") ? ",\"ipv6\":" : ",\"ipv4\":"
            JSONText.appendQuoted(localIP, to: &json)
        }
        json += ",\"port\":0}"
        json += ",\"annotations\":[{\"timestamp\":\(start + max(1, durationMicros)),\"value\":\"\(kind == .server ? "ss" : "cr")\"}]"
        json += ",\"tags\":{"
        for (index, (key, value)) in tags.enumerated() {
            if index > 0 { json += "," }
            JSONText.appendQuoted(key, to: &json)
            json += ":"
            JSONText.appendQuoted(value, to: &json)
        }
        json += "}}"
        reporter.report(json)
    }
}
