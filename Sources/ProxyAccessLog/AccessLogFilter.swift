import ProxyCore

/// Envoy's access log filters, compiled: which finished streams a logger writes.
public indirect enum AccessLogFilter: Sendable {
    public enum Comparison: Sendable {
        case equal, greaterOrEqual, lessOrEqual, notEqual

        func holds(_ value: Int64, _ reference: Int64) -> Bool {
            switch self {
            case .equal: value == reference
            case .greaterOrEqual: value >= reference
            case .lessOrEqual: value <= reference
            case .notEqual: value != reference
            }
        }
    }

    case statusCode(Comparison, Int64)
    case duration(Comparison, Int64)
    /// Without a health check filter no request is a health check: always true.
    case notHealthCheck
    /// Samples `numerator` in `denominator` streams.
    case runtime(numerator: UInt64, denominator: UInt64)
    /// Any of these flags (empty: any flag at all).
    case responseFlags(ResponseFlags)
    case and([AccessLogFilter])
    case or([AccessLogFilter])

    public func matches(_ entry: AccessLogEntry, random: () -> UInt64) -> Bool {
        switch self {
        case .statusCode(let comparison, let value):
            return comparison.holds(Int64(entry.responseCode), value)
        case .duration(let comparison, let value):
            return comparison.holds(entry.durationMs ?? 0, value)
        case .notHealthCheck:
            return true
        case .runtime(let numerator, let denominator):
            return denominator > 0 && random() % denominator < numerator
        case .responseFlags(let flags):
            return flags.isEmpty ? !entry.responseFlags.isEmpty : !entry.responseFlags.isDisjoint(with: flags)
        case .and(let filters):
            return filters.allSatisfy { $0.matches(entry, random: random) }
        case .or(let filters):
            return filters.contains { $0.matches(entry, random: random) }
        }
    }
}
