/// A route's `priority` (Envoy's `RoutingPriority`): which of a cluster's circuit-breaker thresholds
/// and connection pools its requests use. The two priorities never share either.
public enum ResourcePriority: Int, Sendable, CaseIterable {
    case `default` = 0
    case high = 1

    /// The word in stat names: `circuit_breakers.default.*`, `circuit_breakers.high.*`.
    public var statName: String { self == .default ? "default" : "high" }
}
