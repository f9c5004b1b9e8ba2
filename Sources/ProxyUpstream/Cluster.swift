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
    /// The circuit breaker of each priority, indexed by `ResourcePriority.rawValue`.
    private let breakers: [PriorityResources]
    public let stats: ClusterStats
    public let addedViaAPI: Bool
    /// The name EDS assignments for this cluster carry (`eds_cluster_config.service_name`, else the cluster's name).
    public var edsServiceName: String {
        config.edsClusterConfig.serviceName.isEmpty ? name : config.edsClusterConfig.serviceName
    }
    public let upstreamProtocol: UpstreamProtocol
    /// Active health checking (`health_checks`), when configured; started with `startHealthChecks`.
    public let healthChecker: HealthChecker?
    /// `upstream_http_protocol_options` `auto_sni`, when set.
    public let autoSNI: AutoSNI?
    /// Zone-aware routing's inputs, when it applies to this cluster.
    let localZone: LocalZone?
    let zoneAware: ZoneAwareConfig?
    /// `zone_aware_lb_config.fail_traffic_on_panic`: in panic no host serves, rather than every host.
    let failTrafficOnPanic: Bool
    private let sniViews: [ObjectIdentifier: SNIHostViews]
    /// `outlier_detection`, when configured.
    public let outlierDetector: OutlierDetector?
    /// Where interval checks run (the first event loop); nil in validate mode.
    private let backgroundLoop: (any EventLoop)?
    /// `common_lb_config.healthy_panic_threshold` in percent (50 unless set; 0 never panics).
    public let panicThreshold: Double
    /// The EDS `policy.overprovisioning_factor` in percent (140 unless set).
    let overprovisioningFactor = ManagedAtomic<Int>(140)
    /// How this cluster's connections are opened; L4 proxying connects through it directly.
    public let connector: any UpstreamConnector
    /// Each pool is created here and then used only on its own event loop (hence @unchecked Sendable).
    /// HTTP/1.1 pools exist unless the cluster speaks only HTTP/2, and HTTP/2 pools when it may.
    /// Per loop, one pool of each priority (indexed by `ResourcePriority.rawValue`).
    private let http1Pools: [ObjectIdentifier: [HTTP1ConnectionPool]]
    private let http2Pools: [ObjectIdentifier: [HTTP2ConnectionPool]]

    public init(name: String, config: Envoy_Config_Cluster_V3_Cluster, discoveryType: DiscoveryType,
                connectTimeout: TimeAmount, loadBalancer: LoadBalancer, thresholds: [CircuitBreakerThresholds],
                stats: ClusterStats, addedViaAPI: Bool, loops: [any EventLoop], connector: any UpstreamConnector,
                dnsEndpoints: [DNSEndpoint] = [], dnsLookupFamily: DNSLookupFamily = .auto,
                dnsRefreshInterval: Duration = .seconds(5), upstreamProtocol: UpstreamProtocol = .http1,
                http2Options: HTTP2Options = HTTP2Options(), maxRequestsPerConnection: Int = 0,
                outlierDetection: Envoy_Config_Cluster_V3_OutlierDetection? = nil, store: StatsStore? = nil,
                autoSNI: AutoSNI? = nil, healthCheck: Envoy_Config_Core_V3_HealthCheck? = nil,
                localZone: LocalZone? = nil) throws {
        if let outlierDetection, let store {
            self.outlierDetector = try OutlierDetector(
                outlierDetection, stats: OutlierStats(clusterName: name, store: store),
                membershipHealthy: stats.membershipHealthy, path: "outlier_detection")
        } else {
            self.outlierDetector = nil
        }
        self.name = name
        self.config = config
        panicThreshold = config.commonLbConfig.hasHealthyPanicThreshold ? config.commonLbConfig.healthyPanicThreshold.value : 50
        backgroundLoop = loops.first
        self.discoveryType = discoveryType
        self.connectTimeout = connectTimeout
        // The balancer was built for zone-aware routing when it applies (`zoneLocality`).
        let zoneApplies = localZone != nil && loadBalancer.localZone != nil
        let zoneConfig = ZoneAwareConfig(config)
        self.localZone = zoneApplies ? localZone : nil
        self.zoneAware = zoneApplies ? zoneConfig : nil
        self.failTrafficOnPanic = zoneConfig.failTrafficOnPanic
        self.hostSet = ManagedAtomic(loadBalancer)
        self.dnsEndpoints = dnsEndpoints
        self.dnsLookupFamily = dnsLookupFamily
        self.dnsRefreshInterval = dnsRefreshInterval
        breakers = ResourcePriority.allCases.map { priority in
            PriorityResources(priority: priority, thresholds: priority.rawValue < thresholds.count
                                  ? thresholds[priority.rawValue] : CircuitBreakerThresholds(),
                              gauges: stats.circuitBreakers[priority.rawValue])
        }
        self.stats = stats
        self.addedViaAPI = addedViaAPI
        self.upstreamProtocol = upstreamProtocol
        self.autoSNI = autoSNI
        if let healthCheck {
            // Checked in validate mode too; run only where there are event loops.
            let checkConfig = try HealthCheckConfig(healthCheck, path: "health_checks[0]")
            if let loop = loops.first, let store {
                healthChecker = HealthChecker(config: checkConfig, loop: loop, connector: connector, clusterName: name,
                                              stats: HealthCheckStats(clusterName: name, store: store))
            } else {
                healthChecker = nil
            }
        } else {
            healthChecker = nil
        }
        self.sniViews = autoSNI == nil ? [:] : Dictionary(uniqueKeysWithValues: loops.map { (ObjectIdentifier($0), SNIHostViews()) })
        self.connector = connector
        if let store {
            for breaker in breakers where breaker.thresholds.trackRemaining {
                breaker.publishRemaining(cluster: name, store: store)
            }
        }
        let httpOptions = UpstreamHTTPOptions(config)
        var http1Pools: [ObjectIdentifier: [HTTP1ConnectionPool]] = [:]
        var http2Pools: [ObjectIdentifier: [HTTP2ConnectionPool]] = [:]
        for loop in loops {
            // Each priority has pools of its own, as in Envoy: its connections count against its own limits.
            if upstreamProtocol != .http2 {
                http1Pools[ObjectIdentifier(loop)] = breakers.map { breaker in
                    HTTP1ConnectionPool(loop: loop, connector: connector, stats: stats, connectTimeout: connectTimeout,
                                        resources: breaker, options: httpOptions,
                                        maxRequestsPerConnection: maxRequestsPerConnection)
                }
            }
            if upstreamProtocol != .http1 {
                http2Pools[ObjectIdentifier(loop)] = breakers.map { _ in
                    HTTP2ConnectionPool(loop: loop, connector: connector, stats: stats, connectTimeout: connectTimeout,
                                        options: http2Options, maxRequestsPerConnection: maxRequestsPerConnection,
                                        httpOptions: httpOptions)
                }
            }
        }
        self.http1Pools = http1Pools
        self.http2Pools = http2Pools
        stats.membershipTotal.set(Int64(loadBalancer.hosts.count))
        stats.membershipHealthy.set(Int64(loadBalancer.hosts.count))
        if let healthChecker {
            healthChecker.adopt(loadBalancer.hosts)
            stats.membershipHealthy.set(0)
        }
    }

    /// Starts active health checking and outlier detection's interval checks (no-ops without
    /// `health_checks` or `outlier_detection`).
    public func startHealthChecks() {
        healthChecker?.start(cluster: self)
        if let outlierDetector, let loop = backgroundLoop {
            outlierDetector.start(on: loop) { [weak self] in self?.hosts ?? [] }
        }
    }

    /// Stops them, when the cluster is removed or replaced.
    public func stopHealthChecks() {
        healthChecker?.stop()
        outlierDetector?.stop()
    }

    /// Whether the cluster has checks that run on their own (health checks, outlier intervals).
    public var hasBackgroundChecks: Bool { healthChecker != nil || outlierDetector != nil }

    /// Whether `host` is out of load balancing now: ejected by outlier detection, failing its
    /// active health check, or marked unhealthy by EDS.
    private func isUnavailable(_ host: Host, at now: NIODeadline) -> Bool {
        host.failedEDSHealth || (healthChecker != nil && host.health.failedActiveHealthCheck) || host.outlier.isEjected(at: now)
    }

    public var loadBalancer: LoadBalancer { hostSet.load(ordering: .acquiring) }

    public var hosts: [Host] { loadBalancer.hosts }

    /// The host for the next request. With EDS priorities, a level first, by the levels' health
    /// (`PriorityLoad`); then the balancer's pick, skipping unavailable hosts unless fewer than the
    /// panic threshold (`common_lb_config.healthy_panic_threshold`, 50 % unless set) are left, when
    /// all serve.
    public func pickHost(hash: UInt64? = nil) -> Host? {
        let balancer = loadBalancer
        if !balancer.levels.isEmpty { return pickByPriority(balancer, hash: hash) }
        guard outlierDetector != nil || healthChecker != nil || balancer.failedEDSHealthCount > 0
                || !balancer.localityGroups.isEmpty || !balancer.zoneGroups.isEmpty else {
            return balancer.pick(hash: hash)
        }
        let count = balancer.hosts.count
        let failing = (healthChecker.map { count - Int($0.stats.healthy.value) } ?? 0) + balancer.failedEDSHealthCount
        let inPanic = Double((count - (outlierDetector?.ejected ?? 0) - failing) * 100) < panicThreshold * Double(count)
        if !inPanic, !balancer.zoneGroups.isEmpty, let zoneAware, let routing = zoneRouting(balancer),
           LoadBalancer.mix(priorityCursor.loadThenWrappingIncrement(ordering: .relaxed)) % 10_000 < zoneAware.routingEnabled {
            let index = routing.chooseLocality(random: { LoadBalancer.mix(priorityCursor.loadThenWrappingIncrement(ordering: .relaxed)) },
                                               stats: stats)
            return pick(from: balancer.zoneGroups[index], hash: hash, inPanic: false)
        }
        return pick(from: balancer, hash: hash, inPanic: inPanic)
    }

    /// The current zone routing for `balancer`, recomputed at most every 50 ms (host health and the
    /// local cluster change under it); nil when zone-aware routing does not apply now.
    private final class ZoneState: AtomicReference, Sendable {
        let balancer: ObjectIdentifier
        let routing: Result<ZoneRouting, ZoneRouting.Refusal>
        let validUntil: UInt64

        init(balancer: ObjectIdentifier, routing: Result<ZoneRouting, ZoneRouting.Refusal>, validUntil: UInt64) {
            self.balancer = balancer
            self.routing = routing
            self.validUntil = validUntil
        }
    }

    private let zoneState = ManagedAtomic<ZoneState?>(nil)

    func zoneRouting(_ balancer: LoadBalancer, now: NIODeadline = .now()) -> ZoneRouting? {
        let previous = zoneState.load(ordering: .acquiring)
        if let previous, previous.balancer == ObjectIdentifier(balancer), previous.validUntil > now.uptimeNanoseconds {
            return try? previous.routing.get()
        }
        guard let localZone, let zoneAware else { return nil }
        var localCounts: [Host.Locality: Int] = [:]
        for host in localZone.hosts ?? [] { localCounts[host.locality, default: 0] += 1 }
        let routing = ZoneRouting.compute(
            upstreamHealthy: balancer.zoneGroups.map { $0.hosts.filter { !isUnavailable($0, at: now) } },
            hasLocal: balancer.hasLocalZone, localCounts: localCounts, localLocality: localZone.locality,
            minClusterSize: zoneAware.minClusterSize)
        if previous == nil || previous!.balancer != ObjectIdentifier(balancer) || previous!.routing != routing {
            // Counted when the outcome changes, as Envoy counts them when it rebuilds its structures.
            stats.lbRecalculateZoneStructures.increment()
            switch routing {
            case .failure(.clusterTooSmall): stats.lbZoneClusterTooSmall.increment()
            case .failure(.localClusterNotOK): stats.lbLocalClusterNotOK.increment()
            default: break
            }
        }
        zoneState.store(ZoneState(balancer: ObjectIdentifier(balancer), routing: routing,
                                  validUntil: now.uptimeNanoseconds + 50_000_000), ordering: .releasing)
        return try? routing.get()
    }

    private func pick(from balancer: LoadBalancer, hash: UInt64?, inPanic: Bool) -> Host? {
        if inPanic, failTrafficOnPanic {
            stats.lbHealthyPanic.increment()
            return nil
        }
        if !balancer.localityGroups.isEmpty, let group = pickLocality(balancer, hash: hash) {
            return pick(from: group, hash: hash, inPanic: inPanic)
        }
        guard let first = balancer.pick(hash: hash) else { return nil }
        let now = NIODeadline.now()
        outlierDetector?.returnIfExpired(first, at: now)
        if inPanic {
            // Every pick in panic counts, whichever host it lands on, as in Envoy.
            stats.lbHealthyPanic.increment()
            return first
        }
        guard isUnavailable(first, at: now) else { return first }
        for retry in 1..<max(1, balancer.hosts.count) {
            // A hashing balancer moves the point along; the others simply take their next pick.
            guard let next = balancer.pick(hash: hash.map { $0 &+ UInt64(retry) &* 0x9E37_79B9_7F4A_7C15 }) else { break }
            outlierDetector?.returnIfExpired(next, at: now)
            if !isUnavailable(next, at: now) { return next }
        }
        stats.lbHealthyPanic.increment()
        return first
    }

    /// The current levels' load, recomputed at most every 50 ms (host health changes by ejections,
    /// health checks and time, and counting it is a pass over the hosts).
    private final class PriorityState: AtomicReference, Sendable {
        let balancer: ObjectIdentifier
        let load: PriorityLoad
        let validUntil: UInt64

        init(balancer: ObjectIdentifier, load: PriorityLoad, validUntil: UInt64) {
            self.balancer = balancer
            self.load = load
            self.validUntil = validUntil
        }
    }

    private let priorityState = ManagedAtomic<PriorityState?>(nil)
    private let priorityCursor = ManagedAtomic<UInt64>(0)

    func priorityLoad(_ balancer: LoadBalancer, now: NIODeadline = .now()) -> PriorityLoad {
        if let state = priorityState.load(ordering: .acquiring), state.balancer == ObjectIdentifier(balancer),
           state.validUntil > now.uptimeNanoseconds {
            return state.load
        }
        let healthy = balancer.levels.map { level in level.hosts.filter { !isUnavailable($0, at: now) }.count }
        let load = PriorityLoad.compute(healthy: healthy, total: balancer.levels.map(\.hosts.count),
                                        overprovisioningFactor: overprovisioningFactor.load(ordering: .relaxed),
                                        panicThreshold: panicThreshold)
        priorityState.store(PriorityState(balancer: ObjectIdentifier(balancer), load: load,
                                          validUntil: now.uptimeNanoseconds + 50_000_000), ordering: .releasing)
        return load
    }

    /// A locality by effective weight: its `load_balancing_weight` times its availability (the
    /// healthy share times the overprovisioning factor, capped at 1), as Envoy weighs localities;
    /// nil when no locality has any (then the hosts are picked as one set).
    private func pickLocality(_ balancer: LoadBalancer, hash: UInt64?) -> LoadBalancer? {
        let weights = localityWeights(balancer)
        let total = weights.reduce(0, +)
        guard total > 0 else { return nil }
        var point = Int((hash ?? LoadBalancer.mix(priorityCursor.loadThenWrappingIncrement(ordering: .relaxed))) % UInt64(total))
        for (index, weight) in weights.enumerated() {
            if point < weight { return balancer.localityGroups[index] }
            point -= weight
        }
        return nil
    }

    /// Effective locality weights by balancer (a cluster with priorities has one per level).
    private final class LocalityState: AtomicReference, Sendable {
        let weights: [ObjectIdentifier: [Int]]
        let validUntil: UInt64

        init(weights: [ObjectIdentifier: [Int]], validUntil: UInt64) {
            self.weights = weights
            self.validUntil = validUntil
        }
    }

    private let localityState = ManagedAtomic<LocalityState?>(nil)

    /// Each locality's effective weight (scaled by 100), recomputed at most every 50 ms.
    func localityWeights(_ balancer: LoadBalancer, now: NIODeadline = .now()) -> [Int] {
        let key = ObjectIdentifier(balancer)
        let state = localityState.load(ordering: .acquiring)
        let valid = state.map { $0.validUntil > now.uptimeNanoseconds } ?? false
        if valid, let weights = state?.weights[key] { return weights }
        let factor = overprovisioningFactor.load(ordering: .relaxed)
        let weights = balancer.localityGroups.map { group -> Int in
            let total = group.hosts.count
            guard total > 0, let weight = group.hosts.first?.localityWeight else { return 0 }
            let healthy = group.hosts.filter { !isUnavailable($0, at: now) }.count
            return Int(weight) * min(100, factor * healthy / total)
        }
        var all = valid ? state!.weights : [:]
        all[key] = weights
        localityState.store(LocalityState(weights: all, validUntil: valid ? state!.validUntil : now.uptimeNanoseconds + 50_000_000),
                            ordering: .releasing)
        return weights
    }

    private func pickByPriority(_ balancer: LoadBalancer, hash: UInt64?) -> Host? {
        let load = priorityLoad(balancer)
        let point = hash ?? LoadBalancer.mix(priorityCursor.loadThenWrappingIncrement(ordering: .relaxed))
        let level = load.level(at: Int(point % 100))
        return pick(from: balancer.levels[level], hash: hash, inPanic: load.panic[level])
    }

    /// Publishes a new host set; requests already routed keep the host they picked.
    public func replaceHosts(_ hosts: [Host]) {
        let current = loadBalancer
        let old = hostSet.exchange(LoadBalancer(policy: current.policy, hosts: hosts, localityWeighted: current.localityWeighted,
                                                localZone: current.localZone),
                                   ordering: .acquiringAndReleasing)
        stats.membershipTotal.set(Int64(hosts.count))
        stats.membershipHealthy.set(Int64(hosts.count))
        if let healthChecker {
            healthChecker.adopt(hosts.filter { host in !old.hosts.contains { $0 === host } })
            let healthy = hosts.filter { !$0.health.failedActiveHealthCheck }.count
            healthChecker.stats.healthy.set(Int64(healthy))
            stats.membershipHealthy.set(Int64(healthy))
        }
        let removed = old.hosts.filter { oldHost in !hosts.contains { $0 === oldHost } }
        guard !removed.isEmpty else { return }
        for pool in http1Pools.values.joined() {
            pool.loop.execute { for host in removed { pool.closeIdle(host: host) } }
        }
        for pool in http2Pools.values.joined() {
            pool.loop.execute { for host in removed { pool.closeIdle(host: host) } }
        }
    }

    /// The circuit breaker of one priority: its thresholds and what is held against them.
    public func resources(_ priority: ResourcePriority = .default) -> PriorityResources { breakers[priority.rawValue] }

    /// This loop's pool of `priority` for a request to `host` that came downstream over HTTP/2 or not.
    /// Only call from `loop`.
    public func pool(on loop: any EventLoop, host: Host? = nil, downstreamHTTP2: Bool = false,
                     priority: ResourcePriority = .default) -> ConnectionPool {
        let useHTTP2 = switch upstreamProtocol {
        case .http1: false
        case .http2: true
        case .downstream: downstreamHTTP2
        case .auto: host?.negotiatedHTTP2 ?? true
        }
        if useHTTP2, let pools = http2Pools[ObjectIdentifier(loop)] { return .http2(pools[priority.rawValue]) }
        if !useHTTP2, let pools = http1Pools[ObjectIdentifier(loop)] { return .http1(pools[priority.rawValue]) }
        preconditionFailure("cluster \(name) has no pool for this event loop")
    }

    /// `host` as reached under TLS server name `sni` (`auto_sni`): a view with its own connections.
    /// Only call from `loop`.
    public func host(_ host: Host, sni: String, on loop: any EventLoop) -> Host {
        guard let views = sniViews[ObjectIdentifier(loop)], !sni.isEmpty else { return host }
        return views.view(of: host, sni: sni) { evicted in
            for pool in http1Pools[ObjectIdentifier(loop)] ?? [] { pool.closeIdle(host: evicted) }
            for pool in http2Pools[ObjectIdentifier(loop)] ?? [] { pool.closeIdle(host: evicted) }
        }
    }

    /// Closes idle connections on every loop (the cluster was removed or the server drains).
    public func closeIdleConnections() {
        for pool in http1Pools.values.joined() {
            pool.loop.execute { pool.closeIdle() }
        }
        for pool in http2Pools.values.joined() {
            pool.loop.execute { pool.closeIdle() }
        }
    }
}
