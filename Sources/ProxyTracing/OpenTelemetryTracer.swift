import Foundation
import NIOHTTP1
import ProxyAccessLog
import ProxyUpstream
import XDSAPI

/// The HCM's `tracing` with the OpenTelemetry provider: W3C `traceparent`/`tracestate` carried
/// upstream, and finished requests exported as OTLP spans with Envoy's tags as attributes. A
/// caller's `traceparent` decides sampling when it has one (its flag), as Envoy's tracer does.
public final class OpenTelemetryTracer: HTTPTracer {
    public let sampling: TraceSampling
    /// SERVER spans named `ingress`, or CLIENT spans named `egress` on outbound listeners.
    public let kind: Opentelemetry_Proto_Trace_V1_Span.SpanKind
    public let exporter: OTLPExporter
    public let nodeID: String
    public let zone: String

    public init(sampling: TraceSampling, outbound: Bool, exporter: OTLPExporter, nodeID: String, zone: String = "") {
        self.sampling = sampling
        self.kind = outbound ? .client : .server
        self.exporter = exporter
        self.nodeID = nodeID
        self.zone = zone
    }

    public func start(_ headers: HTTPHeaders, random: () -> UInt64) -> RequestSpan {
        let decision = sampling.decide(headers, random: random)
        let spanID = TraceContext.nonZero(random())
        guard let parent = TraceContext.extractW3C(headers) else {
            let context = TraceContext(traceIDHigh: random(), traceID: TraceContext.nonZero(random()), spanID: spanID)
            return RequestSpan(context: context, sampled: decision != .notTraced, decision: decision)
        }
        let context = TraceContext(traceIDHigh: parent.traceIDHigh, traceID: parent.traceID, spanID: spanID,
                                   parentID: parent.spanID)
        return RequestSpan(context: context, sampled: parent.sampled ?? false, decision: decision,
                           traceState: headers.first(name: "tracestate"), parentIsRemote: true)
    }

    public func replacesHeader(_ name: String) -> Bool {
        name == "traceparent" || name == "tracestate"
    }

    /// Envoy writes `tracestate` even when it is empty.
    public func propagationHeaders(_ span: RequestSpan) -> [(String, String)] {
        [("traceparent", span.context.traceparent(sampled: span.sampled)), ("tracestate", span.traceState ?? "")]
    }

    public func update(clusters: ClusterManager) {
        exporter.update(clusters: clusters)
    }

    public func finish(_ span: RequestSpan, entry: AccessLogEntry, durationMicros: Int64, localIP: String?) {
        guard span.sampled else { return }
        var otlp = Opentelemetry_Proto_Trace_V1_Span()
        otlp.traceID = Data(span.context.traceIDBytes)
        otlp.spanID = Data(TraceContext.bytes(span.context.spanID))
        if let parent = span.context.parentID { otlp.parentSpanID = Data(TraceContext.bytes(parent)) }
        if let state = span.traceState, !state.isEmpty { otlp.traceState = state }
        otlp.name = kind == .client ? "egress" : "ingress"
        otlp.kind = kind
        let start = UInt64(max(0, entry.startTime.timeIntervalSince1970 * 1_000_000_000))
        otlp.startTimeUnixNano = start
        otlp.endTimeUnixNano = start + UInt64(max(1, durationMicros)) * 1000
        otlp.attributes = SpanTags.of(entry, nodeID: nodeID, zone: zone).map { key, value in
            var attribute = Opentelemetry_Proto_Common_V1_KeyValue()
            attribute.key = key
            attribute.value.stringValue = value
            return attribute
        }
        // The W3C sampled flag, and OTLP's "the parent's remoteness is known" (and "it is remote").
        otlp.flags = 0x100 | (span.parentIsRemote ? 0x200 : 0) | 0x01
        exporter.export(otlp)
    }
}
