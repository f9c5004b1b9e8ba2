import Synchronization
import ProxyCore

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
    public func tryAcquire() -> Bool { active.tryIncrement(below: limit) }

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
    public func tryAcquire() -> Bool { open.tryIncrement(below: limit) }

    public func release() { open.wrappingSubtract(1, ordering: .relaxed) }

    public var inUse: Int { open.load(ordering: .relaxed) }
}

/// A request the circuit breaker turned away (`x-envoy-overloaded`, response flag UO).
public struct CircuitBreakerOverflow: Error, Sendable {
    public init() {}
}

/// One priority's share of a cluster's circuit breaker: its thresholds, what that priority's requests
/// hold against them across all event loops, and its `circuit_breakers.<priority>.*` gauges. DEFAULT
/// and HIGH count apart, so a burst on one never starves the other.
public final class PriorityResources: Sendable {
    public let priority: ResourcePriority
    public let thresholds: CircuitBreakerThresholds
    /// Connections open or opening in this priority's pools, against `max_connections`.
    public let connections: ConnectionBudget
    public let retries: RetryBudget
    private let inUse = RequestsInUse()
    let gauges: CircuitBreakerGauges

    /// Active and pending requests, apart from `self` so the retry budget can read them.
    private final class RequestsInUse: Sendable {
        let active = Atomic<Int>(0)
        let pending = Atomic<Int>(0)
    }

    init(priority: ResourcePriority, thresholds: CircuitBreakerThresholds, gauges: CircuitBreakerGauges) {
        self.priority = priority
        self.thresholds = thresholds
        self.gauges = gauges
        connections = ConnectionBudget(limit: Int(thresholds.maxConnections))
        if let budget = thresholds.retryBudget {
            // Envoy's budget is a share of this priority's active and pending requests.
            retries = RetryBudget(percent: budget.percent, minConcurrency: budget.minConcurrency) { [inUse] in
                Int64(inUse.active.load(ordering: .relaxed) + inUse.pending.load(ordering: .relaxed))
            }
        } else {
            retries = RetryBudget(limit: Int(thresholds.maxRetries))
        }
    }

    public var activeRequests: Int { inUse.active.load(ordering: .relaxed) }
    public var pendingRequests: Int { inUse.pending.load(ordering: .relaxed) }

    /// Takes a request slot against `max_requests`, or returns false at the limit.
    public func tryAcquireRequest() -> Bool {
        guard inUse.active.tryIncrement(below: Int(thresholds.maxRequests)) else { return false }
        if activeRequests >= Int(thresholds.maxRequests) { gauges.rqOpen.set(1) }
        return true
    }

    public func releaseRequest() {
        // Only the release that leaves the limit closes the gauge: no shared store on every request.
        if inUse.active.subtract(1, ordering: .relaxed).newValue == Int(thresholds.maxRequests) - 1 { gauges.rqOpen.set(0) }
    }

    /// A request starts waiting for a connection, unless `max_pending_requests` already wait.
    func tryEnterPending() -> Bool {
        guard inUse.pending.tryIncrement(below: Int(thresholds.maxPendingRequests)) else { return false }
        if pendingRequests >= Int(thresholds.maxPendingRequests) { gauges.rqPendingOpen.set(1) }
        return true
    }

    /// A request goes back to waiting after it had been handed a slot that was taken again.
    func reenterPending() {
        if inUse.pending.add(1, ordering: .relaxed).newValue >= Int(thresholds.maxPendingRequests) { gauges.rqPendingOpen.set(1) }
    }

    func leavePending() {
        if inUse.pending.subtract(1, ordering: .relaxed).newValue == Int(thresholds.maxPendingRequests) - 1 {
            gauges.rqPendingOpen.set(0)
        }
    }

    /// Takes a connection slot; at `max_connections` sets `cx_open` and returns false.
    func tryAcquireConnection() -> Bool {
        if connections.tryAcquire() { return true }
        gauges.cxOpen.set(1)
        return false
    }

    func releaseConnection() {
        connections.release()
        if connections.inUse < connections.limit { gauges.cxOpen.set(0) }
    }

    /// Takes a retry slot; when the budget is spent sets `rq_retry_open` and returns false.
    public func tryAcquireRetry() -> Bool {
        if retries.tryAcquire() { return true }
        gauges.rqRetryOpen.set(1)
        return false
    }

    public func releaseRetry() {
        retries.release()
        gauges.rqRetryOpen.set(0)
    }

    /// `track_remaining`: `circuit_breakers.<priority>.remaining_{cx,pending,rq,retries}`, read from
    /// this state when they are listed, so the request path never updates them.
    func publishRemaining(cluster name: String, store: StatsStore) {
        let tags = [StatTags.Tag("envoy_cluster_name", name)]
        let stem = "circuit_breakers.\(priority.statName)."
        func gauge(_ stat: String, _ compute: @escaping @Sendable () -> Int) {
            store.computedGauge("cluster.\(name).\(stem)\(stat)",
                                StatTags(extractedName: "cluster.\(stem)\(stat)", tags: tags),
                                compute: { Int64(max(0, compute())) })
        }
        let maxPending = Int(thresholds.maxPendingRequests), maxRequests = Int(thresholds.maxRequests)
        gauge("remaining_cx") { [connections] in connections.limit - connections.inUse }
        gauge("remaining_pending") { [self] in maxPending - pendingRequests }
        gauge("remaining_rq") { [self] in maxRequests - activeRequests }
        gauge("remaining_retries") { [retries] in retries.limit - retries.inUse }
    }
}

extension Atomic where Value == Int {
    /// Adds one unless that would reach `limit`; false when it is already there.
    func tryIncrement(below limit: Int) -> Bool {
        var current = load(ordering: .relaxed)
        while current < limit {
            let (exchanged, original) = compareExchange(expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return true }
            current = original
        }
        return false
    }
}
