import NIOCore
import SwiftProtobuf
import ProxyCore
import Synchronization
import XDSAPI
import XDSResource

/// Per host: the failure streaks outlier detection counts and, when ejected, until when.
public final class HostOutlierState: Sendable {
    let consecutive5xx = Atomic<Int>(0)
    let consecutiveGatewayFailures = Atomic<Int>(0)
    /// With `split_external_local_origin_errors`: failed connects, resets and timeouts in a row.
    let consecutiveLocalOriginFailures = Atomic<Int>(0)
    /// `NIODeadline.uptimeNanoseconds` the ejection ends at; 0 when the host is in service.
    let ejectedUntil = Atomic<UInt64>(0)
    /// What `base_ejection_time` is multiplied by for the next ejection: one more per ejection while
    /// below `max_ejection_time`, one less per `interval` the host then stays in service.
    let ejectionBackoff = Atomic<Int>(0)
    /// `NIODeadline.uptimeNanoseconds` of the last return to service; 0 before any.
    let returnedAt = Atomic<UInt64>(0)
    /// Requests and successes (below 500) in the current interval, for success-rate and
    /// failure-percentage detection.
    let intervalTotal = Atomic<UInt64>(0)
    let intervalSuccess = Atomic<UInt64>(0)
    /// The same for local-origin events, counted apart when errors are split.
    let intervalLocalTotal = Atomic<UInt64>(0)
    let intervalLocalSuccess = Atomic<UInt64>(0)

    public init() {}

    public func isEjected(at now: NIODeadline) -> Bool {
        let until = ejectedUntil.load(ordering: .relaxed)
        return until != 0 && now.uptimeNanoseconds < until
    }
}

/// A cluster's `outlier_detection`: `consecutive_5xx` and `consecutive_gateway_failure` as each
/// request ends (a connect failure or reset counts as both, as Envoy counts it when local-origin
/// errors are not split; with `split_external_local_origin_errors` they count towards
/// `consecutive_local_origin_failure` instead), and every `interval` the success-rate and
/// failure-percentage checks over the hosts with enough requests in it (local-origin ones apart when
/// split). Ejection lasts `base_ejection_time` times the host's ejection multiplier, capped at
/// `max_ejection_time`, plus up to `max_ejection_time_jitter`, within `max_ejection_percent` (at
/// least one host).
public final class OutlierDetector: Sendable {
    let consecutive5xx: Int
    let enforcing5xx: UInt64
    let consecutiveGatewayFailure: Int
    let enforcingGatewayFailure: UInt64
    let baseEjection: TimeAmount
    let maxEjection: TimeAmount
    let maxEjectionPercent: Int
    /// `max_ejection_time_jitter`: up to this much is added to each ejection, at random.
    let maxEjectionJitter: TimeAmount
    /// How often the success-rate and failure-percentage checks run.
    let interval: TimeAmount
    let enforcingSuccessRate: UInt64
    let successRateMinimumHosts: Int
    let successRateRequestVolume: UInt64
    let successRateStdevFactor: Double
    let enforcingFailurePercentage: UInt64
    let failurePercentageThreshold: Double
    let failurePercentageMinimumHosts: Int
    let failurePercentageRequestVolume: UInt64
    /// `split_external_local_origin_errors` and what it brings.
    let splitLocalOrigin: Bool
    let consecutiveLocalOriginFailure: Int
    let enforcingConsecutiveLocalOriginFailure: UInt64
    let enforcingLocalOriginSuccessRate: UInt64
    let enforcingFailurePercentageLocalOrigin: UInt64
    private let intervalTimer = Mutex<RepeatedTask?>(nil)
    private let ejectedCount = Atomic<Int>(0)
    let stats: OutlierStats
    /// The cluster's `membership_healthy`: an ejected host is not healthy.
    private let membershipHealthy: Gauge

    var ejected: Int { ejectedCount.load(ordering: .relaxed) }

    init(_ proto: Envoy_Config_Cluster_V3_OutlierDetection, stats: OutlierStats, membershipHealthy: Gauge,
         path: String) throws {
        self.membershipHealthy = membershipHealthy
        func percent(_ value: Google_Protobuf_UInt32Value, _ present: Bool, default fallback: UInt64, _ field: String) throws -> UInt64 {
            guard present else { return fallback }
            guard value.value <= 100 else { throw FieldError("\(path).\(field)", "value must be less than or equal to 100") }
            return UInt64(value.value)
        }
        func milliseconds(_ duration: Google_Protobuf_Duration, _ present: Bool, default fallback: Int64) -> TimeAmount {
            .milliseconds(present ? duration.milliseconds : fallback)
        }
        func count(_ value: Google_Protobuf_UInt32Value, _ present: Bool, default fallback: Int) -> Int {
            present ? Int(value.value) : fallback
        }
        interval = milliseconds(proto.interval, proto.hasInterval, default: 10_000)
        enforcingSuccessRate = try percent(proto.enforcingSuccessRate, proto.hasEnforcingSuccessRate, default: 100,
                                           "enforcing_success_rate")
        successRateMinimumHosts = count(proto.successRateMinimumHosts, proto.hasSuccessRateMinimumHosts, default: 5)
        successRateRequestVolume = UInt64(count(proto.successRateRequestVolume, proto.hasSuccessRateRequestVolume, default: 100))
        successRateStdevFactor = Double(count(proto.successRateStdevFactor, proto.hasSuccessRateStdevFactor, default: 1900)) / 1000
        enforcingFailurePercentage = try percent(proto.enforcingFailurePercentage, proto.hasEnforcingFailurePercentage,
                                                 default: 0, "enforcing_failure_percentage")
        failurePercentageThreshold = Double(try percent(proto.failurePercentageThreshold, proto.hasFailurePercentageThreshold,
                                                        default: 85, "failure_percentage_threshold"))
        failurePercentageMinimumHosts = count(proto.failurePercentageMinimumHosts, proto.hasFailurePercentageMinimumHosts,
                                              default: 5)
        failurePercentageRequestVolume = UInt64(count(proto.failurePercentageRequestVolume,
                                                      proto.hasFailurePercentageRequestVolume, default: 50))
        splitLocalOrigin = proto.splitExternalLocalOriginErrors
        consecutiveLocalOriginFailure = count(proto.consecutiveLocalOriginFailure, proto.hasConsecutiveLocalOriginFailure,
                                              default: 5)
        enforcingConsecutiveLocalOriginFailure = try percent(
            proto.enforcingConsecutiveLocalOriginFailure, proto.hasEnforcingConsecutiveLocalOriginFailure, default: 100,
            "enforcing_consecutive_local_origin_failure")
        enforcingLocalOriginSuccessRate = try percent(proto.enforcingLocalOriginSuccessRate,
                                                      proto.hasEnforcingLocalOriginSuccessRate, default: 100,
                                                      "enforcing_local_origin_success_rate")
        enforcingFailurePercentageLocalOrigin = try percent(
            proto.enforcingFailurePercentageLocalOrigin, proto.hasEnforcingFailurePercentageLocalOrigin, default: 0,
            "enforcing_failure_percentage_local_origin")
        consecutive5xx = Int(proto.hasConsecutive5Xx ? proto.consecutive5Xx.value : 5)
        enforcing5xx = try percent(proto.enforcingConsecutive5Xx, proto.hasEnforcingConsecutive5Xx, default: 100,
                                   "enforcing_consecutive_5xx")
        consecutiveGatewayFailure = Int(proto.hasConsecutiveGatewayFailure ? proto.consecutiveGatewayFailure.value : 5)
        enforcingGatewayFailure = try percent(proto.enforcingConsecutiveGatewayFailure,
                                              proto.hasEnforcingConsecutiveGatewayFailure, default: 0,
                                              "enforcing_consecutive_gateway_failure")
        baseEjection = milliseconds(proto.baseEjectionTime, proto.hasBaseEjectionTime, default: 30_000)
        maxEjection = milliseconds(proto.maxEjectionTime, proto.hasMaxEjectionTime, default: 300_000)
        maxEjectionJitter = milliseconds(proto.maxEjectionTimeJitter, proto.hasMaxEjectionTimeJitter, default: 0)
        maxEjectionPercent = Int(try percent(proto.maxEjectionPercent, proto.hasMaxEjectionPercent, default: 10,
                                             "max_ejection_percent"))
        self.stats = stats
    }

    /// A finished attempt on `host`: its HTTP status, or 503 for a connect failure or reset.
    public func report(_ host: Host, status: Int, hostCount: Int, random: UInt64) {
        let state = host.outlier
        state.intervalTotal.wrappingAdd(1, ordering: .relaxed)
        if status < 500 { state.intervalSuccess.wrappingAdd(1, ordering: .relaxed) }
        if status >= 500 {
            let streak = state.consecutive5xx.wrappingAdd(1, ordering: .relaxed).newValue
            if streak == consecutive5xx {
                state.consecutive5xx.store(0, ordering: .relaxed)
                stats.detectedConsecutive5xx.increment()
                if random % 100 < enforcing5xx, eject(host, hostCount: hostCount) { stats.enforcedConsecutive5xx.increment() }
            }
        } else {
            state.consecutive5xx.store(0, ordering: .relaxed)
        }
        if (502...504).contains(status) {
            let streak = state.consecutiveGatewayFailures.wrappingAdd(1, ordering: .relaxed).newValue
            if streak == consecutiveGatewayFailure {
                state.consecutiveGatewayFailures.store(0, ordering: .relaxed)
                stats.detectedConsecutiveGatewayFailure.increment()
                if random % 100 < enforcingGatewayFailure, eject(host, hostCount: hostCount) {
                    stats.enforcedConsecutiveGatewayFailure.increment()
                }
            }
        } else {
            state.consecutiveGatewayFailures.store(0, ordering: .relaxed)
        }
    }

    /// A local-origin event on `host`: a connection handed to a request (success), or a failed
    /// connect, a reset or a timeout. Unless errors are split, a failure counts as the HTTP status
    /// Envoy maps it to (`status`, 503 or 504) and a success is not counted.
    public func reportLocalOrigin(_ host: Host, failed: Bool, status: Int, hostCount: Int, random: UInt64) {
        guard splitLocalOrigin else {
            if failed { report(host, status: status, hostCount: hostCount, random: random) }
            return
        }
        let state = host.outlier
        state.intervalLocalTotal.wrappingAdd(1, ordering: .relaxed)
        guard failed else {
            state.intervalLocalSuccess.wrappingAdd(1, ordering: .relaxed)
            state.consecutiveLocalOriginFailures.store(0, ordering: .relaxed)
            return
        }
        let streak = state.consecutiveLocalOriginFailures.wrappingAdd(1, ordering: .relaxed).newValue
        guard streak == consecutiveLocalOriginFailure else { return }
        state.consecutiveLocalOriginFailures.store(0, ordering: .relaxed)
        stats.detectedConsecutiveLocalOriginFailure.increment()
        if random % 100 < enforcingConsecutiveLocalOriginFailure, eject(host, hostCount: hostCount) {
            stats.enforcedConsecutiveLocalOriginFailure.increment()
        }
    }

    private func eject(_ host: Host, hostCount: Int) -> Bool {
        let now = NIODeadline.now()
        guard !host.outlier.isEjected(at: now) else { return false }
        let ejected = ejectedCount.load(ordering: .relaxed)
        // Within max_ejection_percent, but one host may always go.
        guard ejected == 0 || (ejected + 1) * 100 <= hostCount * maxEjectionPercent else {
            stats.overflow.increment()
            return false
        }
        // The multiplier stops growing once the ejection time has reached max_ejection_time.
        var backoff = host.outlier.ejectionBackoff.load(ordering: .relaxed)
        if baseEjection.nanoseconds * Int64(backoff) < maxEjection.nanoseconds + baseEjection.nanoseconds {
            backoff += 1
            host.outlier.ejectionBackoff.store(backoff, ordering: .relaxed)
        }
        var duration = min(baseEjection.nanoseconds * Int64(backoff), max(baseEjection.nanoseconds, maxEjection.nanoseconds))
        if maxEjectionJitter.nanoseconds > 0 { duration += Int64.random(in: 0...maxEjectionJitter.nanoseconds) }
        host.outlier.ejectedUntil.store(now.uptimeNanoseconds + UInt64(duration), ordering: .relaxed)
        ejectedCount.wrappingAdd(1, ordering: .relaxed)
        membershipHealthy.decrement()
        stats.ejectionsActive.increment()
        stats.enforcedTotal.increment()
        stats.total.increment()
        return true
    }

    /// Runs `evaluate` every `interval` on `loop` over the cluster's current hosts, until `stop`.
    func start(on loop: any EventLoop, hosts: @escaping @Sendable () -> [Host]) {
        let task = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
            evaluate(hosts(), random: { UInt64.random(in: 0..<100) })
        }
        intervalTimer.withLock { $0?.cancel(); $0 = task }
    }

    func stop() {
        intervalTimer.withLock { $0?.cancel(); $0 = nil }
    }

    /// One interval's end: ejections that ran out end, then the success-rate check (hosts whose
    /// success rate is below the mean by more than `success_rate_stdev_factor` standard deviations)
    /// and the failure-percentage check (hosts failing at least `failure_percentage_threshold` %),
    /// each over the hosts with enough requests, when there are enough such hosts.
    func evaluate(_ hosts: [Host], random: () -> UInt64, now: NIODeadline = .now()) {
        var external: [Counted] = []
        var local: [Counted] = []
        for host in hosts {
            returnIfExpired(host, at: now)
            relaxBackoff(host, at: now)
            let state = host.outlier
            let total = state.intervalTotal.exchange(0, ordering: .relaxed)
            let success = state.intervalSuccess.exchange(0, ordering: .relaxed)
            let localTotal = state.intervalLocalTotal.exchange(0, ordering: .relaxed)
            let localSuccess = state.intervalLocalSuccess.exchange(0, ordering: .relaxed)
            guard !state.isEjected(at: now) else { continue }
            external.append(Counted(host: host, total: total, success: success))
            local.append(Counted(host: host, total: localTotal, success: localSuccess))
        }
        judge(external, hostCount: hosts.count, random: random,
              successRate: (enforcingSuccessRate, stats.detectedSuccessRate, stats.enforcedSuccessRate),
              failurePercentage: (enforcingFailurePercentage, stats.detectedFailurePercentage, stats.enforcedFailurePercentage))
        if splitLocalOrigin {
            judge(local, hostCount: hosts.count, random: random,
                  successRate: (enforcingLocalOriginSuccessRate, stats.detectedLocalOriginSuccessRate,
                                stats.enforcedLocalOriginSuccessRate),
                  failurePercentage: (enforcingFailurePercentageLocalOrigin, stats.detectedLocalOriginFailurePercentage,
                                      stats.enforcedLocalOriginFailurePercentage))
        }
    }

    struct Counted {
        var host: Host
        var total: UInt64
        var success: UInt64
    }

    /// The success-rate and failure-percentage checks over one kind of events (external, or local-origin).
    private func judge(_ counted: [Counted], hostCount: Int, random: () -> UInt64,
                       successRate: (enforcing: UInt64, detected: Counter, enforced: Counter),
                       failurePercentage: (enforcing: UInt64, detected: Counter, enforced: Counter)) {
        let rated = counted.filter { $0.total >= successRateRequestVolume }
        if rated.count >= successRateMinimumHosts, !rated.isEmpty {
            let rates = rated.map { Double($0.success) * 100 / Double($0.total) }
            let mean = rates.reduce(0, +) / Double(rates.count)
            let variance = rates.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(rates.count)
            let threshold = mean - successRateStdevFactor * variance.squareRoot()
            for (entry, rate) in zip(rated, rates) where rate < threshold {
                successRate.detected.increment()
                if random() % 100 < successRate.enforcing, eject(entry.host, hostCount: hostCount) {
                    successRate.enforced.increment()
                    if successRate.enforced === stats.enforcedSuccessRate { stats.successRate.increment() }
                }
            }
        }
        let judged = counted.filter { $0.total >= failurePercentageRequestVolume }
        if judged.count >= failurePercentageMinimumHosts {
            for entry in judged where Double(entry.total - entry.success) * 100 / Double(entry.total) >= failurePercentageThreshold {
                failurePercentage.detected.increment()
                if random() % 100 < failurePercentage.enforcing, eject(entry.host, hostCount: hostCount) {
                    failurePercentage.enforced.increment()
                }
            }
        }
    }

    /// Puts a host whose ejection ran out back in service (called when it is seen again).
    func returnIfExpired(_ host: Host, at now: NIODeadline) {
        let until = host.outlier.ejectedUntil.load(ordering: .relaxed)
        guard until != 0, now.uptimeNanoseconds >= until else { return }
        let (exchanged, _) = host.outlier.ejectedUntil.compareExchange(expected: until, desired: 0, ordering: .relaxed)
        guard exchanged else { return }
        host.outlier.returnedAt.store(now.uptimeNanoseconds, ordering: .relaxed)
        ejectedCount.wrappingSubtract(1, ordering: .relaxed)
        membershipHealthy.increment()
        stats.ejectionsActive.decrement()
    }

    /// A host back in service for at least an interval has its ejection multiplier lowered by one
    /// at each interval's end, so a host that stays healthy is ejected for less next time.
    private func relaxBackoff(_ host: Host, at now: NIODeadline) {
        let state = host.outlier
        let returned = state.returnedAt.load(ordering: .relaxed)
        guard returned != 0, state.ejectedUntil.load(ordering: .relaxed) == 0,
              now.uptimeNanoseconds >= returned + UInt64(interval.nanoseconds),
              state.ejectionBackoff.load(ordering: .relaxed) > 0 else { return }
        state.ejectionBackoff.wrappingSubtract(1, ordering: .relaxed)
    }
}

/// `cluster.<c>.outlier_detection.*`.
final class OutlierStats: Sendable {
    let ejectionsActive: Gauge
    let total, enforcedTotal, overflow, detectedConsecutive5xx, enforcedConsecutive5xx,
        detectedConsecutiveGatewayFailure, enforcedConsecutiveGatewayFailure, successRate, detectedSuccessRate,
        enforcedSuccessRate, detectedFailurePercentage, enforcedFailurePercentage,
        detectedConsecutiveLocalOriginFailure, enforcedConsecutiveLocalOriginFailure, detectedLocalOriginSuccessRate,
        enforcedLocalOriginSuccessRate, detectedLocalOriginFailurePercentage, enforcedLocalOriginFailurePercentage: Counter

    init(clusterName: String, store: StatsStore) {
        let scope = StatScope(store: store, prefix: "cluster.\(clusterName).outlier_detection.",
                              extractedPrefix: "cluster.outlier_detection.",
                              tags: [StatTags.Tag("envoy_cluster_name", clusterName)])
        ejectionsActive = scope.gauge("ejections_active")
        total = scope.counter("ejections_total")
        enforcedTotal = scope.counter("ejections_enforced_total")
        overflow = scope.counter("ejections_overflow")
        detectedConsecutive5xx = scope.counter("ejections_detected_consecutive_5xx")
        enforcedConsecutive5xx = scope.counter("ejections_enforced_consecutive_5xx")
        detectedConsecutiveGatewayFailure = scope.counter("ejections_detected_consecutive_gateway_failure")
        enforcedConsecutiveGatewayFailure = scope.counter("ejections_enforced_consecutive_gateway_failure")
        successRate = scope.counter("ejections_success_rate")
        detectedSuccessRate = scope.counter("ejections_detected_success_rate")
        enforcedSuccessRate = scope.counter("ejections_enforced_success_rate")
        detectedFailurePercentage = scope.counter("ejections_detected_failure_percentage")
        enforcedFailurePercentage = scope.counter("ejections_enforced_failure_percentage")
        detectedConsecutiveLocalOriginFailure = scope.counter("ejections_detected_consecutive_local_origin_failure")
        enforcedConsecutiveLocalOriginFailure = scope.counter("ejections_enforced_consecutive_local_origin_failure")
        detectedLocalOriginSuccessRate = scope.counter("ejections_detected_local_origin_success_rate")
        enforcedLocalOriginSuccessRate = scope.counter("ejections_enforced_local_origin_success_rate")
        detectedLocalOriginFailurePercentage = scope.counter("ejections_detected_local_origin_failure_percentage")
        enforcedLocalOriginFailurePercentage = scope.counter("ejections_enforced_local_origin_failure_percentage")
        for name in ["ejections_consecutive_5xx", "ejections_detected_degradation"] { _ = scope.counter(name) }
    }
}
