import Foundation
import NIOCore
import NIOHTTP1
import ProxyAccessLog
import ProxyCore
import XDSResource

/// The HCM's `tracing` with the Zipkin provider: decides which requests are traced, carries B3
/// context upstream, and turns finished requests into Zipkin v2 spans with Envoy's tags.
public final class ZipkinTracer: Sendable {
    public enum SpanKind: String, Sendable { case server = "SERVER", client = "CLIENT" }

    /// Sampling percentages (0...100) from `random_sampling`, `client_sampling`, `overall_sampling`.
    public struct Sampling: Sendable {
        public var random = 100.0
        public var client = 100.0
        public var overall = 100.0
        public init() {}
    }

    public let sampling: Sampling
    public let kind: SpanKind
    public let sharedSpanContext: Bool
    public let traceID128: Bool
    public let reporter: ZipkinReporter
    /// `node_id` tag and the span's local service name (the node's cluster, as Envoy).
    public let nodeID: String
    public let serviceName: String

    public init(sampling: Sampling, kind: SpanKind, sharedSpanContext: Bool, traceID128: Bool, reporter: ZipkinReporter,
                nodeID: String, serviceName: String) {
        self.nodeID = nodeID
        self.serviceName = serviceName
        self.sampling = sampling
        self.kind = kind
        self.sharedSpanContext = sharedSpanContext
        self.traceID128 = traceID128
        self.reporter = reporter
    }

    /// Why a request is traced, as Envoy marks it in the x-request-id.
    public enum Decision: Sendable {
        case sampled, forced, client, notTraced

        /// The character Envoy writes at index 14 of the x-request-id UUID.
        var requestIDMark: Character? {
            switch self {
            case .sampled: "9"
            case .forced: "a"
            case .client: "b"
            case .notTraced: nil
            }
        }
    }

    /// The span of one request, from its start.
    public struct ActiveSpan: Sendable {
        public let context: TraceContext
        public let sampled: Bool
        public let decision: Decision
        /// Whether the span id came from the caller (shared span context).
        public let shared: Bool
    }

    public func decide(_ headers: HTTPHeaders, random: () -> UInt64) -> Decision {
        func roll(_ percent: Double) -> Bool {
            percent >= 100 || Double(random() % 10_000) < percent * 100
        }
        guard roll(sampling.overall) else { return .notTraced }
        if headers.first(name: "x-envoy-force-trace") != nil { return .forced }
        if headers.first(name: "x-client-trace-id") != nil, roll(sampling.client) { return .client }
        return roll(sampling.random) ? .sampled : .notTraced
    }

    /// Starts a request's span: the caller's context continued, or a new trace.
    public func start(_ headers: HTTPHeaders, random: () -> UInt64) -> ActiveSpan {
        let decision = decide(headers, random: random)
        let incoming = TraceContext.extract(headers)
        let sampled = incoming?.sampled ?? (decision != .notTraced)
        if let incoming, incoming.hasIDs {
            if sharedSpanContext {
                return ActiveSpan(context: incoming, sampled: sampled, decision: decision, shared: true)
            }
            var child = incoming
            child.parentID = incoming.spanID
            child.spanID = Self.nonZero(random())
            return ActiveSpan(context: child, sampled: sampled, decision: decision, shared: false)
        }
        let id = Self.nonZero(random())
        let context = TraceContext(traceIDHigh: traceID128 ? Self.nonZero(random()) : 0, traceID: id, spanID: id)
        return ActiveSpan(context: context, sampled: sampled, decision: decision, shared: true)
    }

    private static func nonZero(_ value: UInt64) -> UInt64 { value == 0 ? 1 : value }

    /// The x-request-id with Envoy's trace mark, when the decision sets one.
    public static func markedRequestID(_ id: String, decision: Decision) -> String {
        guard let mark = decision.requestIDMark else { return id }
        var characters = Array(id)
        guard characters.count == 36, characters[14] != mark else { return id }
        characters[14] = mark
        return String(characters)
    }

    /// Reports a finished, sampled request.
    public func finish(_ span: ActiveSpan, entry: AccessLogEntry, durationMicros: Int64, localIP: String?) {
        guard span.sampled else { return }
        let start = Int64(entry.startTime.timeIntervalSince1970 * 1_000_000)
        var tags: [(String, String)] = [
            ("component", "proxy"),
            ("node_id", nodeID),
            ("guid:x-request-id", entry.requestHeaders.first(name: "x-request-id") ?? ""),
            ("http.url", "\(entry.scheme)://\(entry.authority)\(entry.path)"),
            ("http.method", entry.method),
            ("downstream_cluster", entry.requestHeaders.first(name: "x-envoy-downstream-service-cluster") ?? "-"),
            ("user_agent", entry.requestHeaders.first(name: "user-agent") ?? "-"),
            ("http.protocol", entry.protocolName ?? "-"),
            ("peer.address", entry.downstreamRemoteAddress.map(AccessLogEntry.withoutPort) ?? "-"),
            ("request_size", String(entry.bytesReceived)),
            ("response_size", String(entry.bytesSent)),
            ("response_flags", entry.responseFlags.description),
            ("http.status_code", String(entry.responseCode)),
        ]
        if let cluster = entry.upstreamCluster {
            tags.append(("upstream_cluster", cluster))
            tags.append(("upstream_cluster.name", cluster))
        }
        if entry.responseCode >= 500 || entry.responseCode == 0 { tags.append(("error", "true")) }
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
