import Atomics
import NIOCore
import ProxyCore
import XDSAPI

/// A cluster as the data path uses it: hosts, load balancer, limits, stats, and one connection pool
/// per event loop. Immutable after construction except for loop-confined pools.
public final class Cluster: @unchecked Sendable {
    public enum DiscoveryType: String, Sendable {
        case `static` = "STATIC"
        case strictDNS = "STRICT_DNS"
        case logicalDNS = "LOGICAL_DNS"
        /// Hosts come from ClusterLoadAssignments over xDS.
        case eds = "EDS"
    }

    public let name: String
    /// The Cluster message this was built from, for `/config_dump`.
    public let config: Envoy_Config_Cluster_V3_Cluster
    public let discoveryType: DiscoveryType
    public let connectTimeout: TimeAmount
    /// DNS clusters' configured names, resolved by `refreshDNS`.
    public let dnsEndpoints: [DNSEndpoint]
    public let dnsLookupFamily: DNSLookupFamily
    public let dnsRefreshInterval: Duration
    /// The current hosts and their balancer; DNS refreshes swap it atomically.
    private let hostSet: ManagedAtomic<LoadBalancer>
    public let thresholds: CircuitBreakerThresholds
    public let retryBudget: RetryBudget
    public let stats: ClusterStats
    public let addedViaAPI: Bool
    /// The name EDS assignments for this cluster carry (`eds_cluster_config.service_name`, else the cluster's name).
    public var edsServiceName: String {
        config.edsClusterConfig.serviceName.isEmpty ? name : config.edsClusterConfig.serviceName
    }
    /// Each pool is created here and then used only on its own event loop (hence @unchecked Sendable).
    private let pools: [ObjectIdentifier: HTTP1ConnectionPool]

    public init(name: String, config: Envoy_Config_Cluster_V3_Cluster, discoveryType: DiscoveryType,
                connectTimeout: TimeAmount, loadBalancer: LoadBalancer, thresholds: CircuitBreakerThresholds,
                stats: ClusterStats, addedViaAPI: Bool, loops: [any EventLoop], connector: any UpstreamConnector,
                dnsEndpoints: [DNSEndpoint] = [], dnsLookupFamily: DNSLookupFamily = .auto,
                dnsRefreshInterval: Duration = .seconds(5)) {
        self.name = name
        self.config = config
        self.discoveryType = discoveryType
        self.connectTimeout = connectTimeout
        self.hostSet = ManagedAtomic(loadBalancer)
        self.dnsEndpoints = dnsEndpoints
        self.dnsLookupFamily = dnsLookupFamily
        self.dnsRefreshInterval = dnsRefreshInterval
        self.thresholds = thresholds
        self.retryBudget = RetryBudget(limit: Int(thresholds.maxRetries))
        self.stats = stats
        self.addedViaAPI = addedViaAPI
        var pools: [ObjectIdentifier: HTTP1ConnectionPool] = [:]
        for loop in loops {
            pools[ObjectIdentifier(loop)] = HTTP1ConnectionPool(loop: loop, connector: connector, stats: stats,
                                                                connectTimeout: connectTimeout)
        }
        self.pools = pools
        stats.membershipTotal.set(Int64(loadBalancer.hosts.count))
        stats.membershipHealthy.set(Int64(loadBalancer.hosts.count))
    }

    public var loadBalancer: LoadBalancer { hostSet.load(ordering: .acquiring) }

    public var hosts: [Host] { loadBalancer.hosts }

    /// Publishes a new host set; requests already routed keep the host they picked.
    public func replaceHosts(_ hosts: [Host]) {
        let old = hostSet.exchange(LoadBalancer(policy: loadBalancer.policy, hosts: hosts), ordering: .acquiringAndReleasing)
        stats.membershipTotal.set(Int64(hosts.count))
        stats.membershipHealthy.set(Int64(hosts.count))
        let removed = old.hosts.filter { oldHost in !hosts.contains { $0 === oldHost } }
        guard !removed.isEmpty else { return }
        for pool in pools.values {
            pool.loop.execute { for host in removed { pool.closeIdle(host: host) } }
        }
    }

    /// This loop's pool. Only call from `loop`.
    public func pool(on loop: any EventLoop) -> HTTP1ConnectionPool {
        guard let pool = pools[ObjectIdentifier(loop)] else {
            preconditionFailure("cluster \(name) has no pool for this event loop")
        }
        return pool
    }

    /// Closes idle connections on every loop (the cluster was removed or the server drains).
    public func closeIdleConnections() {
        for pool in pools.values {
            pool.loop.execute { pool.closeIdle() }
        }
    }
}
