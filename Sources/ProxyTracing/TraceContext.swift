import NIOHTTP1

/// A trace context: the ids a request carries between services, as B3 (`x-b3-*` headers or the
/// single `b3` header) or W3C (`traceparent`) writes them.
public struct TraceContext: Sendable, Equatable {
    /// The high half of a 128-bit trace id; 0 for 64-bit ids.
    public var traceIDHigh: UInt64
    public var traceID: UInt64
    public var spanID: UInt64
    public var parentID: UInt64?
    /// nil: the caller left the decision to us.
    public var sampled: Bool?

    public init(traceIDHigh: UInt64 = 0, traceID: UInt64, spanID: UInt64, parentID: UInt64? = nil, sampled: Bool? = nil) {
        self.traceIDHigh = traceIDHigh
        self.traceID = traceID
        self.spanID = spanID
        self.parentID = parentID
        self.sampled = sampled
    }

    public var traceIDText: String {
        traceIDHigh == 0 ? Self.hex(traceID) : Self.hex(traceIDHigh) + Self.hex(traceID)
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    static func nonZero(_ value: UInt64) -> UInt64 { value == 0 ? 1 : value }

    static func parseHex(_ text: Substring) -> UInt64? {
        guard text.count == 16 else { return nil }
        return UInt64(text, radix: 16)
    }

    static func parseSampled(_ text: Substring) -> Bool? {
        switch text {
        case "1", "true", "d": true
        case "0", "false": false
        default: nil
        }
    }

    /// The context in `headers`, from `b3` if present, else from `x-b3-*`; nil when there is none
    /// (a lone sampling decision comes back with zero ids).
    public static func extract(_ headers: HTTPHeaders) -> TraceContext? {
        if let single = headers.first(name: "b3") {
            let parts = single.split(separator: "-", omittingEmptySubsequences: false)
            if parts.count == 1 {
                return parseSampled(parts[0]).map { TraceContext(traceID: 0, spanID: 0, sampled: $0) }
            }
            guard parts.count >= 2, let (high, low) = traceID(parts[0]), let span = parseHex(parts[1]) else { return nil }
            return TraceContext(traceIDHigh: high, traceID: low, spanID: span,
                                parentID: parts.count > 3 ? parseHex(parts[3]) : nil,
                                sampled: parts.count > 2 ? parseSampled(parts[2]) : nil)
        }
        let sampled = headers.first(name: "x-b3-sampled").flatMap { parseSampled($0[...]) }
            ?? (headers.first(name: "x-b3-flags") == "1" ? true : nil)
        guard let traceText = headers.first(name: "x-b3-traceid"), let (high, low) = traceID(traceText[...]),
              let span = headers.first(name: "x-b3-spanid").flatMap({ parseHex($0[...]) })
        else {
            return sampled.map { TraceContext(traceID: 0, spanID: 0, sampled: $0) }
        }
        return TraceContext(traceIDHigh: high, traceID: low, spanID: span,
                            parentID: headers.first(name: "x-b3-parentspanid").flatMap { parseHex($0[...]) },
                            sampled: sampled)
    }

    private static func traceID(_ text: Substring) -> (UInt64, UInt64)? {
        switch text.count {
        case 16: return parseHex(text).map { (0, $0) }
        case 32:
            guard let high = parseHex(text.prefix(16)), let low = parseHex(text.suffix(16)) else { return nil }
            return (high, low)
        default: return nil
        }
    }

    /// Whether this holds ids (not just a sampling decision).
    public var hasIDs: Bool { traceID != 0 || traceIDHigh != 0 }

    /// The headers the upstream request carries, in Envoy's order.
    public func b3Headers(sampled: Bool) -> [(String, String)] {
        var headers = [("x-b3-traceid", traceIDText), ("x-b3-spanid", Self.hex(spanID))]
        if let parentID { headers.append(("x-b3-parentspanid", Self.hex(parentID))) }
        headers.append(("x-b3-sampled", sampled ? "1" : "0"))
        return headers
    }

    static let headerNames: Set<String> = ["b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
                                           "x-b3-flags"]
}

// MARK: W3C trace context

extension TraceContext {
    /// The caller's `traceparent`; nil when there is none or it is malformed (all-zero ids, not
    /// the 55-character layout), and then a new trace starts. Like Envoy, any version but `ff` is
    /// read in that layout (swift-w3c-trace-context reads version 00 only, so it is not used here).
    public static func extractW3C(_ headers: HTTPHeaders) -> TraceContext? {
        guard let value = headers.first(name: "traceparent"), value.utf8.count == 55 else { return nil }
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0].count == 2, let version = UInt8(parts[0], radix: 16), version != 0xff,
              parts[1].count == 32, let high = parseHex(parts[1].prefix(16)), let low = parseHex(parts[1].suffix(16)),
              high != 0 || low != 0,
              let span = parseHex(parts[2]), span != 0,
              parts[3].count == 2, let flags = UInt8(parts[3], radix: 16)
        else { return nil }
        return TraceContext(traceIDHigh: high, traceID: low, spanID: span, sampled: flags & 1 == 1)
    }

    /// The `traceparent` (version 00) that carries this span upstream.
    public func traceparent(sampled: Bool) -> String {
        "00-\(Self.hex(traceIDHigh))\(Self.hex(traceID))-\(Self.hex(spanID))-\(sampled ? "01" : "00")"
    }

    /// The 16 bytes of the trace id and the 8 of a span id, big-endian, as OTLP carries them.
    var traceIDBytes: [UInt8] { Self.bytes(traceIDHigh) + Self.bytes(traceID) }

    static func bytes(_ value: UInt64) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
    }
}
