import Synchronization

/// The default-priority thresholds of a cluster's circuit breaker: `max_requests` is enforced by the
/// router, `max_connections` and `max_pending_requests` by the HTTP/1.1 pools, `max_retries` by the
/// retry budget.
public struct CircuitBreakerThresholds: Sendable, Equatable {
    public var maxConnections: UInt32 = 1024
    public var maxPendingRequests: UInt32 = 1024
    public var maxRequests: UInt32 = 1024
    public var maxRetries: UInt32 = 3
    /// `retry_budget`: concurrent retries as a share of the cluster's active and pending requests
    /// (`budget_percent`, 20 % unless set), at least `min_retry_concurrency` (3); replaces `max_retries`.
    public var retryBudget: (percent: Double, minConcurrency: Int)?
    /// `track_remaining`: publish `circuit_breakers.default.remaining_*`.
    public var trackRemaining = false

    public init() {}

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.maxConnections == rhs.maxConnections && lhs.maxPendingRequests == rhs.maxPendingRequests
            && lhs.maxRequests == rhs.maxRequests && lhs.maxRetries == rhs.maxRetries
            && lhs.retryBudget?.percent == rhs.retryBudget?.percent
            && lhs.retryBudget?.minConcurrency == rhs.retryBudget?.minConcurrency && lhs.trackRemaining == rhs.trackRemaining
    }
}

/// Concurrent retries across all event loops, bounded by `max_retries` or by a `retry_budget`.
public final class RetryBudget: Sendable {
    private let fixedLimit: Int
    private let budget: (percent: Double, minConcurrency: Int, outstanding: @Sendable () -> Int64)?
    private let active = Atomic<Int>(0)

    public init(limit: Int) {
        fixedLimit = limit
        budget = nil
    }

    /// A budget: `percent` of `outstanding()` requests (active and pending), never below `minConcurrency`.
    public init(percent: Double, minConcurrency: Int, outstanding: @escaping @Sendable () -> Int64) {
        fixedLimit = minConcurrency
        budget = (percent, minConcurrency, outstanding)
    }

    /// How many retries may run at once now.
    public var limit: Int {
        guard let budget else { return fixedLimit }
        return max(budget.minConcurrency, Int(budget.percent / 100 * Double(budget.outstanding())))
    }

    /// Takes one retry slot, or returns false when the budget is spent (`upstream_rq_retry_overflow`).
    public func tryAcquire() -> Bool {
        let limit = self.limit
        var current = active.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = active.compareExchange(expected: current, desired: current + 1,
                                                               ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    public func release() { active.wrappingSubtract(1, ordering: .relaxed) }

    public var inUse: Int { active.load(ordering: .relaxed) }
}

/// A cluster's upstream connections across all its pools and loops, open or opening, held against
/// `max_connections`.
public final class ConnectionBudget: Sendable {
    public let limit: Int
    private let open = Atomic<Int>(0)

    public init(limit: Int) { self.limit = limit }

    /// Takes a connection slot, or returns false at the limit (`upstream_cx_overflow`).
    public func tryAcquire() -> Bool {
        var current = open.load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = open.compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }

    public func release() { open.wrappingSubtract(1, ordering: .relaxed) }

    public var inUse: Int { open.load(ordering: .relaxed) }
}

/// A request the circuit breaker turned away (`x-envoy-overloaded`, response flag UO).
public struct CircuitBreakerOverflow: Error, Sendable {
    public init() {}
}
