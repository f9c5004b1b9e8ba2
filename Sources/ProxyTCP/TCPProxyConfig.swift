import NIOCore
import ProxyAccessLog
import ProxyCore
import ProxyUpstream

/// A `tcp_proxy` filter compiled against the current clusters; a listener publishes it through a
/// SnapshotHolder and each connection reads it once when accepted.
public final class TCPProxyConfig: Sendable {
    /// One target of a weighted split (a single `cluster` is a split of one).
    public struct Target: Sendable {
        public var cluster: String
        public var weight: UInt32
    }

    public let statPrefix: String
    public let targets: [Target]
    public let clusters: ClusterManager
    /// Envoy's default is one hour; nil disables it.
    public let idleTimeout: TimeAmount?
    public let maxConnectAttempts: Int
    public let stats: TCPProxyStats
    public let accessLoggers: [AccessLogger]
    private let totalWeight: UInt64

    public init(statPrefix: String, targets: [Target], clusters: ClusterManager, idleTimeout: TimeAmount?,
                maxConnectAttempts: Int, stats: TCPProxyStats, accessLoggers: [AccessLogger] = []) {
        self.accessLoggers = accessLoggers
        self.statPrefix = statPrefix
        self.targets = targets
        self.clusters = clusters
        self.idleTimeout = idleTimeout
        self.maxConnectAttempts = max(1, maxConnectAttempts)
        self.stats = stats
        self.totalWeight = targets.reduce(0) { $0 + UInt64($1.weight) }
    }

    /// The cluster for a new connection, by weight.
    public func pickCluster(random: UInt64) -> String {
        guard targets.count > 1, totalWeight > 0 else { return targets[0].cluster }
        var point = random % totalWeight
        for target in targets {
            if point < UInt64(target.weight) { return target.cluster }
            point -= UInt64(target.weight)
        }
        return targets[targets.count - 1].cluster
    }
}
