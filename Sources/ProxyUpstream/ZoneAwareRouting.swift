import Synchronization
import XDSAPI

/// Where this proxy runs (its node's locality) and which cluster lists the proxies of its own
/// service (`cluster_manager.local_cluster_name`): what zone-aware routing compares an upstream
/// cluster's localities with. The local cluster is published here whenever the cluster set
/// changes, so a CDS update of it is seen.
public final class LocalZone: Sendable {
    public let locality: Host.Locality
    public let clusterName: String
    private let cluster = Mutex<Cluster?>(nil)

    public init(locality: Host.Locality, clusterName: String) {
        self.locality = locality
        self.clusterName = clusterName
    }

    public func update(from clusters: ClusterManager) {
        cluster.withLock { $0 = clusters[clusterName] }
    }

    /// The local cluster's hosts now; nil until it exists.
    var hosts: [Host]? { cluster.withLock { $0?.hosts } }
}

/// `common_lb_config.zone_aware_lb_config`, with Envoy's defaults.
struct ZoneAwareConfig: Sendable {
    /// `routing_enabled`: the share of requests considered for zone-aware routing, in 1/10000.
    var routingEnabled: UInt64 = 10_000
    /// `min_cluster_size`: fewer healthy upstream hosts than this and no zone-aware routing.
    var minClusterSize = 6
    /// `fail_traffic_on_panic`: a cluster in panic picks no host rather than any host.
    var failTrafficOnPanic = false

    init(_ config: Envoy_Config_Cluster_V3_Cluster) {
        guard case .zoneAwareLbConfig(let zone)? = config.commonLbConfig.localityConfigSpecifier else { return }
        if zone.hasRoutingEnabled { routingEnabled = UInt64(max(0, min(100, zone.routingEnabled.value)) * 100) }
        if zone.hasMinClusterSize { minClusterSize = Int(zone.minClusterSize.value) }
        failTrafficOnPanic = zone.failTrafficOnPanic
    }
}

/// How the upstream localities share traffic from this zone, as Envoy works it out: the upstream's
/// share of healthy hosts in each locality against the local cluster's share of proxies there. If
/// the local locality has at least its share of upstream hosts, everything stays local; otherwise
/// the part it can take stays, and the rest goes to the localities with spare capacity, in
/// proportion to it. Shares are in 1/10000, as Envoy keeps them.
struct ZoneRouting: Sendable, Equatable {
    enum Mode: Sendable, Equatable {
        case direct
        /// `localShare`: of 10000 requests, how many stay local; `residual`: each locality's spare
        /// capacity, accumulated (the local one adds none).
        case residual(localShare: UInt64, residual: [UInt64])
    }

    let mode: Mode

    /// Why zone-aware routing does not apply, counted in Envoy's stats.
    enum Refusal: Error, Sendable, Equatable { case tooFewLocalities, localClusterNotOK, clusterTooSmall }

    /// - Parameters:
    ///   - upstreamHealthy: healthy upstream hosts per locality, the local locality first when the
    ///     upstream has one (`hasLocal`).
    ///   - localCounts: the local cluster's hosts by locality.
    static func compute(upstreamHealthy: [[Host]], hasLocal: Bool, localCounts: [Host.Locality: Int],
                        localLocality: Host.Locality, minClusterSize: Int) -> Result<ZoneRouting, Refusal> {
        guard upstreamHealthy.count >= 2, localCounts.count >= 2 else { return .failure(.tooFewLocalities) }
        guard (localCounts[localLocality] ?? 0) > 0 else { return .failure(.localClusterNotOK) }
        let totalUpstream = upstreamHealthy.reduce(0) { $0 + $1.count }
        guard totalUpstream >= minClusterSize else { return .failure(.clusterTooSmall) }
        let totalLocal = localCounts.values.reduce(0, +)
        let shares = upstreamHealthy.map { hosts -> (local: UInt64, upstream: UInt64) in
            guard let locality = hosts.first?.locality else { return (0, 0) }
            return (UInt64(10_000 * (localCounts[locality] ?? 0) / totalLocal), UInt64(10_000 * hosts.count / totalUpstream))
        }
        if hasLocal, shares[0].upstream > 0, shares[0].upstream >= shares[0].local { return .success(ZoneRouting(mode: .direct)) }
        let localShare = hasLocal && shares[0].local > 0 ? shares[0].upstream * 10_000 / shares[0].local : 0
        var residual: [UInt64] = []
        var running: UInt64 = 0
        for (index, share) in shares.enumerated() {
            if !(index == 0 && hasLocal), share.upstream > share.local { running += share.upstream - share.local }
            residual.append(running)
        }
        return .success(ZoneRouting(mode: .residual(localShare: localShare, residual: residual)))
    }

    /// The locality index for one request (`random` draws in any range), counting Envoy's stats.
    func chooseLocality(random: () -> UInt64, stats: ClusterStats) -> Int {
        switch mode {
        case .direct:
            stats.lbZoneRoutingAllDirectly.increment()
            return 0
        case .residual(let localShare, let residual):
            if random() % 10_000 < localShare {
                stats.lbZoneRoutingSampled.increment()
                return 0
            }
            stats.lbZoneRoutingCrossZone.increment()
            guard let total = residual.last, total > 0 else {
                stats.lbZoneNoCapacityLeft.increment()
                return Int(random() % UInt64(residual.count))
            }
            let point = random() % total
            return residual.firstIndex { point < $0 } ?? residual.count - 1
        }
    }
}
