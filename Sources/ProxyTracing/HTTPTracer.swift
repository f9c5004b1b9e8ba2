import NIOHTTP1
import ProxyAccessLog
import ProxyUpstream

/// The HCM's `tracing` provider, whichever it is (Zipkin, OpenTelemetry): decides which requests are
/// traced, carries the span's context upstream in the provider's headers, and reports finished spans.
public protocol HTTPTracer: Sendable {
    /// Starts a request's span: the caller's context continued, or a new trace.
    func start(_ headers: HTTPHeaders, random: () -> UInt64) -> RequestSpan
    /// Whether a request header (lower-cased name) is this tracer's context, which the span's own
    /// replaces rather than passes on.
    func replacesHeader(_ name: String) -> Bool
    /// The headers that carry the span's context upstream, in the order Envoy writes them.
    func propagationHeaders(_ span: RequestSpan) -> [(String, String)]
    /// Reports a finished request's span, when it is sampled.
    func finish(_ span: RequestSpan, entry: AccessLogEntry, durationMicros: Int64, localIP: String?)
    /// The clusters the reports go to, swapped by the config manager on every update.
    func update(clusters: ClusterManager)
}

/// The span of one request, from its start.
public struct RequestSpan: Sendable {
    public var context: TraceContext
    public var sampled: Bool
    public var decision: TraceDecision
    /// Whether the span id came from the caller (Zipkin's shared span context).
    public var shared: Bool
    /// W3C `tracestate` as received, passed on unchanged.
    public var traceState: String?
    /// Whether the parent span is the caller's (it came in the request) rather than none.
    public var parentIsRemote: Bool

    public init(context: TraceContext, sampled: Bool, decision: TraceDecision, shared: Bool = false,
                traceState: String? = nil, parentIsRemote: Bool = false) {
        self.context = context
        self.sampled = sampled
        self.decision = decision
        self.shared = shared
        self.traceState = traceState
        self.parentIsRemote = parentIsRemote
    }
}

/// Why a request is traced, as Envoy marks it in the x-request-id.
public enum TraceDecision: Sendable {
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

    /// The x-request-id with Envoy's trace mark, when the decision sets one.
    public func marked(requestID id: String) -> String {
        guard let mark = requestIDMark else { return id }
        var characters = Array(id)
        guard characters.count == 36, characters[14] != mark else { return id }
        characters[14] = mark
        return String(characters)
    }
}

/// The HCM's sampling percentages (0...100) from `random_sampling`, `client_sampling`, `overall_sampling`.
public struct TraceSampling: Sendable {
    public var random = 100.0
    public var client = 100.0
    public var overall = 100.0
    public init() {}

    /// The HCM's decision for a request, before any caller's sampling flag is considered.
    public func decide(_ headers: HTTPHeaders, random: () -> UInt64) -> TraceDecision {
        func roll(_ percent: Double) -> Bool {
            percent >= 100 || Double(random() % 10_000) < percent * 100
        }
        guard roll(overall) else { return .notTraced }
        if headers.first(name: "x-envoy-force-trace") != nil { return .forced }
        if headers.first(name: "x-client-trace-id") != nil, roll(client) { return .client }
        return roll(self.random) ? .sampled : .notTraced
    }
}
