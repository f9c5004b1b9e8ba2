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
    /// `NIODeadline.uptimeNanoseconds` the ejection ends at; 0 when the host is in service.
    let ejectedUntil = Atomic<UInt64>(0)
    let ejections = Atomic<Int>(0)

    public init() {}

    public func isEjected(at now: NIODeadline) -> Bool {
        let until = ejectedUntil.load(ordering: .relaxed)
        return until != 0 && now.uptimeNanoseconds < until
    }
}

/// A cluster's `outlier_detection`, consecutive-failure kinds: `consecutive_5xx` and
/// `consecutive_gateway_failure` (a connect failure or reset counts as both, as Envoy counts it when
/// local-origin errors are not split). Ejection lasts `base_ejection_time` times the host's ejection
/// count, capped at `max_ejection_time`, within `max_ejection_percent` (at least one host).
public final class OutlierDetector: Sendable {
    let consecutive5xx: Int
    let enforcing5xx: UInt64
    let consecutiveGatewayFailure: Int
    let enforcingGatewayFailure: UInt64
    let baseEjection: TimeAmount
    let maxEjection: TimeAmount
    let maxEjectionPercent: Int
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
        if proto.hasEnforcingSuccessRate && proto.enforcingSuccessRate.value > 0 {
            throw FieldError(path + ".enforcing_success_rate", "success-rate outlier detection is not supported yet")
        }
        if proto.hasEnforcingFailurePercentage && proto.enforcingFailurePercentage.value > 0 {
            throw FieldError(path + ".enforcing_failure_percentage", "failure-percentage outlier detection is not supported yet")
        }
        if proto.splitExternalLocalOriginErrors {
            throw FieldError(path + ".split_external_local_origin_errors", "not supported yet")
        }
        consecutive5xx = Int(proto.hasConsecutive5Xx ? proto.consecutive5Xx.value : 5)
        enforcing5xx = try percent(proto.enforcingConsecutive5Xx, proto.hasEnforcingConsecutive5Xx, default: 100,
                                   "enforcing_consecutive_5xx")
        consecutiveGatewayFailure = Int(proto.hasConsecutiveGatewayFailure ? proto.consecutiveGatewayFailure.value : 5)
        enforcingGatewayFailure = try percent(proto.enforcingConsecutiveGatewayFailure,
                                              proto.hasEnforcingConsecutiveGatewayFailure, default: 0,
                                              "enforcing_consecutive_gateway_failure")
        baseEjection = milliseconds(proto.baseEjectionTime, proto.hasBaseEjectionTime, default: 30_000)
        maxEjection = milliseconds(proto.maxEjectionTime, proto.hasMaxEjectionTime, default: 300_000)
        maxEjectionPercent = Int(try percent(proto.maxEjectionPercent, proto.hasMaxEjectionPercent, default: 10,
                                             "max_ejection_percent"))
        self.stats = stats
    }

    /// A finished attempt on `host`: its HTTP status, or 503 for a connect failure or reset.
    public func report(_ host: Host, status: Int, hostCount: Int, random: UInt64) {
        let state = host.outlier
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

    private func eject(_ host: Host, hostCount: Int) -> Bool {
        let now = NIODeadline.now()
        guard !host.outlier.isEjected(at: now) else { return false }
        let ejected = ejectedCount.load(ordering: .relaxed)
        // Within max_ejection_percent, but one host may always go.
        guard ejected == 0 || (ejected + 1) * 100 <= hostCount * maxEjectionPercent else {
            stats.overflow.increment()
            return false
        }
        let times = host.outlier.ejections.wrappingAdd(1, ordering: .relaxed).newValue
        let duration = min(baseEjection.nanoseconds * Int64(times), max(baseEjection.nanoseconds, maxEjection.nanoseconds))
        host.outlier.ejectedUntil.store(now.uptimeNanoseconds + UInt64(duration), ordering: .relaxed)
        ejectedCount.wrappingAdd(1, ordering: .relaxed)
        membershipHealthy.decrement()
        stats.ejectionsActive.increment()
        stats.enforcedTotal.increment()
        stats.total.increment()
        return true
    }

    /// Puts a host whose ejection ran out back in service (called when it is seen again).
    func returnIfExpired(_ host: Host, at now: NIODeadline) {
        let until = host.outlier.ejectedUntil.load(ordering: .relaxed)
        guard until != 0, now.uptimeNanoseconds >= until else { return }
        let (exchanged, _) = host.outlier.ejectedUntil.compareExchange(expected: until, desired: 0, ordering: .relaxed)
        guard exchanged else { return }
        ejectedCount.wrappingSubtract(1, ordering: .relaxed)
        membershipHealthy.increment()
        stats.ejectionsActive.decrement()
    }
}

/// `cluster.<c>.outlier_detection.*`.
final class OutlierStats: Sendable {
    let ejectionsActive: Gauge
    let total, enforcedTotal, overflow, detectedConsecutive5xx, enforcedConsecutive5xx,
        detectedConsecutiveGatewayFailure, enforcedConsecutiveGatewayFailure: Counter

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
        for name in ["ejections_consecutive_5xx", "ejections_success_rate", "ejections_enforced_success_rate",
                     "ejections_detected_success_rate", "ejections_enforced_failure_percentage",
                     "ejections_detected_failure_percentage", "ejections_enforced_consecutive_local_origin_failure",
                     "ejections_detected_consecutive_local_origin_failure"] {
            _ = scope.counter(name)
        }
    }
}
