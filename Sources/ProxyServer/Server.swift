import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyAccessLog
import ProxyAdmin
import ProxyCore
import ProxyHTTP
import ProxyRouting
import ProxyTLS
import ProxyTracing
import ProxyUpstream
import ProxyXDS
import Synchronization
import XDSAPI
import XDSResource

/// meshproxy's composition root: compiles the bootstrap, binds listeners and admin, and runs until
/// SIGTERM, SIGINT or `/quitquitquit`.
public final class Server: @unchecked Sendable {
    public let options: ServerOptions
    public let bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap
    public let stats = StatsStore()
    let config: ConfigManager
    let group: MultiThreadedEventLoopGroup?
    private let adminGroup: MultiThreadedEventLoopGroup?
    private var adminChannel: (any Channel)?
    let startedAt = Date()
    let loadedAt = Date()
    private let logger = Logger(label: "main")
    private let stateCode = Atomic<Int>(2)  // Envoy's server.state: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING
    private let healthCheckFailedFlag = Atomic<Bool>(false)
    /// A signal or `/quitquitquit` completes it; a server that fails to start completes it as it goes.
    private let shutdownSignal: ShutdownSignal?
    private let serverGauges: ServerGauges
    private let resolver: any DNSResolver = GetaddrinfoResolver()
    private var backgroundTasks: [Task<Void, Never>] = []
    private let statsdSinks: [StatsdSink]
    private let histogramSamples: HistogramSampleBuffers?
    /// `stats_flush_interval` (Envoy: 5 s).
    private let statsFlushInterval: TimeAmount
    /// The management server from `dynamic_resources.ads_config`, when there is one.
    private let adsTarget: (host: String, port: Int, mode: ADSClientMode, tls: ADSClientTLS?)?
    private let initialFetchTimeout: Duration

    /// Compiles the bootstrap. With `bind == false` (validate mode) no threads or sockets are made.
    public init(options: ServerOptions, bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, bind: Bool = true) throws {
        self.options = options
        self.bootstrap = bootstrap
        _ = AnyTypeRegistry.meshproxy
        AccessLogSinks.shared.flushInterval = .milliseconds(options.fileFlushIntervalMilliseconds)
        let loops: [any EventLoop]
        if bind {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.concurrency))
            self.group = group
            self.adminGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            loops = Array(group.makeIterator())
            shutdownSignal = ShutdownSignal(adminGroup!.next().makePromise())
        } else {
            group = nil
            adminGroup = nil
            loops = []
            shutdownSignal = nil
        }
        ServerContext.workerCount = max(1, options.concurrency)
        ServerContext.tracing = HTTPTracers.Context(nodeID: bootstrap.node.id, serviceCluster: bootstrap.node.cluster,
                                                    zone: bootstrap.node.locality.zone, version: MeshproxyVersion.string,
                                                    loop: loops.first)
        Self.workerIndex = Dictionary(uniqueKeysWithValues: loops.enumerated().map { (ObjectIdentifier($0.element), $0.offset) })

        stats.setHistogramBuckets(try Self.histogramBuckets(of: bootstrap))
        stats.setTagRules(try Self.tagRules(of: bootstrap))
        if !bootstrap.statsSinks.isEmpty, let adminGroup {
            // statsd sends every sample: each event loop keeps its own until the flush.
            let samples = HistogramSampleBuffers(loops: loops + Array(adminGroup.makeIterator()))
            stats.setHistogramSampleObserver(samples)
            histogramSamples = samples
        } else {
            histogramSamples = nil
        }
        var secrets: [String: SecretProto] = [:]
        for (index, secret) in bootstrap.staticResources.secrets.enumerated() {
            let path = "static_resources.secrets[\(index)]"
            guard secrets[secret.name] == nil else {
                throw ListenerConfigError(path + ".name", "Duplicate static TlsCertificate secret name \(secret.name)")
            }
            do {
                try SecretCheck.validate(secret)
            } catch let error as FieldError {
                throw ListenerConfigError(path + "." + error.fieldPath, error.reason)
            }
            secrets[secret.name] = secret
        }
        let localZone = try Self.localZone(of: bootstrap)
        var clusters: [Cluster] = []
        var seen = Set<String>()
        for (index, config) in bootstrap.staticResources.clusters.enumerated() {
            let path = "static_resources.clusters[\(index)]"
            guard seen.insert(config.name).inserted else {
                throw ListenerConfigError(path + ".name", "cluster manager: duplicate cluster '\(config.name)'")
            }
            do {
                clusters.append(try Cluster.make(config, stats: stats, addedViaAPI: false, loops: loops, secrets: secrets,
                                                 localZone: localZone))
            } catch let error as ClusterConfigError {
                throw ListenerConfigError(path + "." + error.fieldPath, error.reason)
            }
        }
        let staticClusters = ClusterManager(clusters)
        var listeners: [ListenerRuntime] = []
        var listenerNames = Set<String>()
        for (index, config) in bootstrap.staticResources.listeners.enumerated() {
            let path = "static_resources.listeners[\(index)]"
            let runtime = try ListenerRuntime(config, path: path, store: stats, secrets: secrets)
            for (chainIndex, chain) in runtime.chains.enumerated() {
                try chain.template?.validateClusters(
                    staticClusters, path: "\(path).filter_chains[\(chainIndex)].filters[0].typed_config")
            }
            try runtime.defaultChain?.template?.validateClusters(
                staticClusters, path: path + ".default_filter_chain.filters[0].typed_config")
            if runtime.templates.contains(where: { $0.rdsName != nil }), !bootstrap.dynamicResources.hasAdsConfig {
                throw ListenerConfigError(path, "RDS over ADS needs dynamic_resources.ads_config")
            }
            guard listenerNames.insert(runtime.name).inserted else {
                throw ListenerConfigError(path + ".name", "duplicate listener name '\(runtime.name)'")
            }
            listeners.append(runtime)
        }
        (adsTarget, initialFetchTimeout) = try Self.adsTarget(of: bootstrap, clusters: staticClusters, secrets: secrets)
        config = ConfigManager(staticClusters: clusters, staticListeners: listeners, store: stats, loops: loops,
                               group: group, resolver: resolver, staticSecrets: secrets,
                               localSecretNames: options.workloadCertFromCSR ? [WorkloadCertificateRenewer.secretName] : [],
                               drainTime: .seconds(Int64(options.drainTimeSeconds)), localZone: localZone)
        serverGauges = ServerGauges(store: stats)
        serverGauges.concurrency.set(Int64(options.concurrency))
        statsdSinks = try StatsdSink.sinks(of: bootstrap, store: stats)
        statsFlushInterval = bootstrap.hasStatsFlushInterval && bootstrap.statsFlushInterval.milliseconds > 0
            ? .milliseconds(bootstrap.statsFlushInterval.milliseconds) : .seconds(5)
    }

    /// `stats_config.histogram_bucket_settings`, checked as Envoy checks them (buckets above 0, unique).
    static func histogramBuckets(of bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap) throws -> [HistogramBucketRule] {
        try bootstrap.statsConfig.histogramBucketSettings.enumerated().map { index, setting in
            let path = "stats_config.histogram_bucket_settings[\(index)]"
            guard !setting.buckets.isEmpty, setting.buckets.allSatisfy({ $0 > 0 }) else {
                throw ListenerConfigError(path + ".buckets", "at least one bucket, each above 0, is required")
            }
            guard Set(setting.buckets).count == setting.buckets.count else {
                throw ListenerConfigError(path + ".buckets", "repeated value must contain unique items")
            }
            let match: StringMatch
            do {
                match = try StringMatch(setting.match, path: path + ".match")
            } catch let error as FieldError {
                throw ListenerConfigError(error.fieldPath, error.reason)
            }
            return HistogramBucketRule(bounds: setting.buckets) { match.matches($0) }
        }
    }

    /// `stats_config.stats_tags` and `use_all_default_tags`. A regex's first capture group leaves the
    /// name and its second (else its first) is the tag's value, as Envoy's tag extractors read them.
    static func tagRules(of bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap) throws -> StatTagRules {
        let config = bootstrap.statsConfig
        var rules = StatTagRules(useDefaultTags: !config.hasUseAllDefaultTags || config.useAllDefaultTags.value)
        for (index, tag) in config.statsTags.enumerated() {
            let path = "stats_config.stats_tags[\(index)]"
            guard !tag.tagName.isEmpty else { throw ListenerConfigError(path + ".tag_name", "a tag name is required") }
            switch tag.tagValue {
            case .fixedValue(let value)?:
                rules.fixed.append(StatTags.Tag(tag.tagName, value))
            case .regex(let pattern)?:
                let regex: CompiledRegex
                do {
                    regex = try CompiledRegex(pattern)
                } catch {
                    throw ListenerConfigError(path + ".regex", "invalid regex: \(error)")
                }
                rules.extractors.append((tag.tagName, { name in
                    guard let groups = regex.firstMatchGroups(in: name), groups.count > 1, let removed = groups[1] else {
                        return nil
                    }
                    let value = groups.count > 2 ? groups[2] ?? removed : removed
                    return (String(removed), String(value))
                }))
            case nil:
                throw ListenerConfigError(path, "regex or fixed_value is required (default extractors by name are not supported)")
            }
        }
        return rules
    }

    /// Checks `dynamic_resources` and finds the ADS server's address in its static cluster.
    /// `cluster_manager.local_cluster_name` with the node's locality: zone-aware routing's reference.
    /// The named cluster must be a static one, as Envoy requires.
    static func localZone(of bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap) throws -> LocalZone? {
        let name = bootstrap.clusterManager.localClusterName
        guard !name.isEmpty else { return nil }
        guard bootstrap.staticResources.clusters.contains(where: { $0.name == name }) else {
            throw ListenerConfigError("cluster_manager.local_cluster_name", "local cluster '\(name)' must be defined")
        }
        let node = bootstrap.node.locality
        return LocalZone(locality: Host.Locality(region: node.region, zone: node.zone, subZone: node.subZone),
                         clusterName: name)
    }

    static func adsTarget(of bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, clusters: ClusterManager,
                          secrets: [String: SecretProto]) throws
        -> ((host: String, port: Int, mode: ADSClientMode, tls: ADSClientTLS?)?, Duration)
    {
        guard bootstrap.hasDynamicResources else { return (nil, Duration.seconds(15)) }
        let dynamic = bootstrap.dynamicResources
        for (field, source) in [("lds_config", dynamic.ldsConfig), ("cds_config", dynamic.cdsConfig)] {
            guard source.configSourceSpecifier == nil || source.configSourceSpecifier == .ads(.init()) else {
                throw ListenerConfigError("dynamic_resources." + field, "only ADS (\"ads: {}\") is supported")
            }
        }
        guard dynamic.hasAdsConfig else {
            throw ListenerConfigError("dynamic_resources.ads_config", "an ads_config is required for dynamic resources")
        }
        let ads = dynamic.adsConfig
        guard ads.apiType == .grpc || ads.apiType == .deltaGrpc else {
            throw ListenerConfigError("dynamic_resources.ads_config.api_type",
                                      "api_type \(ads.apiType) is not supported (GRPC and DELTA_GRPC are)")
        }
        guard case .envoyGrpc(let grpc)? = ads.grpcServices.first?.targetSpecifier else {
            throw ListenerConfigError("dynamic_resources.ads_config.grpc_services", "one envoy_grpc service is required")
        }
        guard let cluster = clusters[grpc.clusterName] else {
            throw ListenerConfigError("dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name",
                                      "unknown static cluster '\(grpc.clusterName)'")
        }
        guard let host = cluster.hosts.first ?? cluster.dnsEndpoints.first.map({
            Host(address: $0.name, port: $0.port, hostname: $0.name) }) else {
            throw ListenerConfigError("static_resources.clusters", "xDS cluster '\(grpc.clusterName)' has no endpoint")
        }
        let timeout = dynamic.ldsConfig.hasInitialFetchTimeout ? dynamic.ldsConfig.initialFetchTimeout.milliseconds : 15_000
        let index = bootstrap.staticResources.clusters.firstIndex { $0.name == grpc.clusterName } ?? 0
        let tls = try ADSClientTLS(xdsCluster: cluster.config, secrets: secrets, path: "static_resources.clusters[\(index)]")
        return ((host.address, host.port, ads.apiType == .deltaGrpc ? .delta : .stateOfTheWorld, tls), .milliseconds(timeout))
    }

    nonisolated(unsafe) static var workerIndex: [ObjectIdentifier: Int] = [:]

    /// Binds admin and the static listeners and starts the xDS client. A listener that cannot bind
    /// fails start-up, as in Envoy. With xDS, the server is LIVE after the initial fetch (or its timeout).
    public func start() throws {
        guard let group, let adminGroup else { return }
        stateCode.store(3, ordering: .relaxed)
        try StatsdSink.start(statsdSinks, samples: histogramSamples, group: adminGroup, interval: statsFlushInterval)
        resolveClustersBeforeListening()
        if bootstrap.hasAdmin, case .socketAddress(let socket)? = bootstrap.admin.address.address,
           case .portValue(let port)? = socket.portSpecifier {
            let endpoints = AdminEndpoints(source: self)
            let adminStats = ConnectionManagerStats(statPrefix: "admin", listenerScope: nil, store: stats)
            adminChannel = try ServerBootstrap(group: adminGroup)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        try channel.pipeline.syncOperations.addHandler(AdminHTTPHandler(endpoints: endpoints, stats: adminStats))
                    }
                }
                .bind(host: socket.address, port: Int(port)).wait()
            logger.info("admin address: \(adminChannel!.localAddress.map { "\($0)" } ?? "")")
        }
        let listeners = config.allListeners
        let bound = DispatchSemaphore(value: 0)
        let failure = Mutex<(any Error)?>(nil)
        Task {
            do {
                for listener in listeners { try await listener.bind(group: group) }
            } catch {
                failure.withLock { $0 = error }
            }
            bound.signal()
        }
        bound.wait()
        if let error = failure.withLock({ $0 }) { throw error }
        for listener in listeners { logger.info("listener '\(listener.name)' listening on \(listener.boundAddress)") }
        if config.hasSecretFiles || adsTarget != nil {
            // SDS files are looked at every second (Envoy watches their directory); unchanged bytes cost a read.
            let config = self.config
            backgroundTasks.append(Task {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await config.reloadSecretFiles()
                }
            })
        }
        guard let adsTarget else {
            becomeLive()
            return
        }
        config.onInitialFetchDone = { [weak self] in self?.becomeLive() }
        if options.workloadCertFromCSR {
            let renewer = try WorkloadCertificateRenewer(host: adsTarget.host, port: adsTarget.port, tls: adsTarget.tls,
                                                         config: config)
            backgroundTasks.append(Task { await renewer.run() })
        }
        let client = ADSClient(host: adsTarget.host, port: adsTarget.port, tls: adsTarget.tls, node: node, subscriber: config,
                               logger: Logger(label: "config"), mode: adsTarget.mode)
        backgroundTasks.append(Task { await client.run() })
        let timeout = initialFetchTimeout
        backgroundTasks.append(Task { [weak self] in
            try? await Task.sleep(for: timeout)
            if let self, self.stateCode.load(ordering: .relaxed) == 3 {
                self.logger.warning("initial xDS fetch not complete after \(timeout); serving what arrived")
                self.becomeLive()
            }
        })
        logger.info("xDS: ADS to \(adsTarget.host):\(adsTarget.port)")
    }

    private func becomeLive() {
        let (exchanged, _) = stateCode.compareExchange(expected: 3, desired: 0, ordering: .relaxed)
        if exchanged {
            serverGauges.live.set(1)
            logger.info("all listeners started; server LIVE")
        }
    }

    /// Like Envoy's cluster warming: DNS clusters resolve once before listeners accept traffic (a
    /// name that does not resolve leaves its cluster empty: `no healthy upstream`), then refresh.
    private func resolveClustersBeforeListening() {
        let clusters = config.view.clusters.ordered.filter { $0.discoveryType == .strictDNS || $0.discoveryType == .logicalDNS }
        guard !clusters.isEmpty else { return }
        let resolver = self.resolver
        let done = DispatchSemaphore(value: 0)
        Task {
            await withTaskGroup(of: Void.self) { group in
                for cluster in clusters { group.addTask { await cluster.refreshDNS(using: resolver) } }
            }
            done.signal()
        }
        if done.wait(timeout: .now() + 10) == .timedOut {
            logger.warning("DNS resolution still running after 10 s; starting listeners anyway")
        }
        backgroundTasks += clusters.compactMap { $0.startDNSRefresh(using: resolver) }
    }

    /// Blocks until a shutdown signal or `/quitquitquit`, then drains and stops.
    public func runUntilShutdown() throws {
        guard let shutdownSignal else { return }
        let signals = [SIGTERM, SIGINT].map { signalNumber -> any DispatchSourceSignal in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { shutdownSignal.request() }
            source.resume()
            return source
        }
        try shutdownSignal.promise.futureResult.wait()
        signals.forEach { $0.cancel() }
        drainAndStop()
    }

    /// Stops accepting, lets requests in flight finish (bounded by --drain-time-s), then closes all.
    func drainAndStop() {
        // Stopped without a signal (in-process tests): the promise must not be left pending.
        shutdownSignal?.request()
        logger.info("shutting down: draining listeners")
        stateCode.store(1, ordering: .relaxed)
        backgroundTasks.forEach { $0.cancel() }
        config.cancelBackgroundWork()
        for listener in config.view.listeners { try? listener.channel?.close().wait() }
        let deadline = Date().addingTimeInterval(TimeInterval(options.drainTimeSeconds))
        while Date() < deadline, activeRequests() > 0 {
            usleep(20_000)
        }
        try? adminChannel?.close().wait()
        try? group?.syncShutdownGracefully()
        try? adminGroup?.syncShutdownGracefully()
        AccessLogSinks.shared.flushAll()
        logger.info("exiting")
    }

    private func activeRequests() -> Int64 {
        config.view.listeners.reduce(0) { total, listener in
            total + listener.activeConnectionManagers.reduce(0) { $0 + $1.load().stats.downstreamRqActive.value }
        }
    }
}

/// `server.*` stats.
final class ServerGauges: Sendable {
    let live, uptime, concurrency, memoryAllocated, memoryHeapSize, state, totalConnections, version,
        daysUntilFirstCertExpiring, hotRestartEpoch, parentConnections: Gauge

    init(store: StatsStore) {
        func gauge(_ name: String) -> Gauge {
            store.gauge("server." + name, StatTags(extractedName: "server." + name))
        }
        live = gauge("live")
        uptime = gauge("uptime")
        concurrency = gauge("concurrency")
        memoryAllocated = gauge("memory_allocated")
        memoryHeapSize = gauge("memory_heap_size")
        state = gauge("state")
        totalConnections = gauge("total_connections")
        version = gauge("version")
        daysUntilFirstCertExpiring = gauge("days_until_first_cert_expiring")
        hotRestartEpoch = gauge("hot_restart_epoch")
        parentConnections = gauge("parent_connections")
        for counter in ["debug_assertion_failures", "dynamic_unknown_fields", "envoy_bug_failures",
                        "static_unknown_fields", "wip_protos", "dropped_stat_flushes"] {
            _ = store.counter("server." + counter, StatTags(extractedName: "server." + counter))
        }
    }
}

extension Server: AdminDataSource {
    public func refreshServerStats() {
        serverGauges.uptime.set(Int64(Date().timeIntervalSince(startedAt)))
        serverGauges.state.set(Int64(stateCode.load(ordering: .relaxed)))
        serverGauges.totalConnections.set(Int64(ServerContext.totalConnections.load(ordering: .relaxed)))
        let rss = Int64(ProcessMemory.residentBytes())
        serverGauges.memoryAllocated.set(rss)
        serverGauges.memoryHeapSize.set(rss)
    }

    public var clusters: ClusterManager { config.view.clusters }

    public var listeners: [(name: String, address: String, host: String, port: Int)] {
        config.view.listeners.filter { $0.channel != nil }.map { listener in
            let port = listener.channel?.localAddress?.port ?? listener.port
            return (listener.name, listener.boundAddress, listener.host, port)
        }
    }

    public var state: String {
        switch stateCode.load(ordering: .relaxed) {
        case 0: "LIVE"
        case 1: "DRAINING"
        case 2: "PRE_INITIALIZING"
        default: "INITIALIZING"
        }
    }

    public var healthCheckFailed: Bool { healthCheckFailedFlag.load(ordering: .relaxed) }

    public func setHealthCheckFailed(_ failed: Bool) {
        healthCheckFailedFlag.store(failed, ordering: .relaxed)
        serverGauges.live.set(failed ? 0 : 1)
    }

    public func logLevels() -> [(name: String, level: String)] { LogLevels.shared.all() }

    public func setLogLevel(_ level: String?, paths: [(String, String)]) -> Bool {
        if let level {
            guard let parsed = LogLevels.parse(level) else { return false }
            LogLevels.shared.setAll(parsed)
        }
        for (name, levelName) in paths {
            guard let parsed = LogLevels.parse(levelName), LogLevels.shared.set(name, parsed) else { return false }
        }
        return true
    }

    public func reopenLogs() {
        AccessLogSinks.shared.reopenAll()
    }

    public func drainListeners(graceful: Bool, inboundOnly: Bool) {
        config.drainListeners(graceful: graceful, inboundOnly: inboundOnly)
    }

    public func requestShutdown() {
        shutdownSignal?.request()
    }
}

/// The promise a shutdown completes, completed once. Also completed when dropped, so that a server
/// whose configuration fails in `init` reports its error instead of tripping NIO's leaked-promise
/// check; a server that shut down has completed it already, and must not complete it again once its
/// event loops are gone (NIO refuses tasks for a loop that shut down).
final class ShutdownSignal: Sendable {
    let promise: EventLoopPromise<Void>
    private let requested = Atomic<Bool>(false)

    init(_ promise: EventLoopPromise<Void>) {
        self.promise = promise
    }

    func request() {
        guard requested.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
        promise.succeed(())
    }

    deinit {
        request()
    }
}
