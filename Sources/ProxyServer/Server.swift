import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyAdmin
import ProxyCore
import ProxyHTTP
import ProxyUpstream
import Synchronization
import XDSAPI
import XDSResource

/// meshproxy's composition root: compiles the bootstrap, binds listeners and admin, and runs until
/// SIGTERM, SIGINT or `/quitquitquit`.
public final class Server: @unchecked Sendable {
    public let options: ServerOptions
    public let bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap
    public let stats = StatsStore()
    let clusterManager: ClusterManager
    let listenerRuntimes: [ListenerRuntime]
    let group: MultiThreadedEventLoopGroup?
    private let adminGroup: MultiThreadedEventLoopGroup?
    private var adminChannel: (any Channel)?
    let startedAt = Date()
    let loadedAt = Date()
    private let logger = Logger(label: "main")
    private let stateCode = Atomic<Int>(2)  // Envoy's server.state: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING
    private let healthCheckFailedFlag = Atomic<Bool>(false)
    private let shutdownRequested: EventLoopPromise<Void>?
    private let serverGauges: ServerGauges
    private let resolver: any DNSResolver = GetaddrinfoResolver()
    private var dnsRefreshTasks: [Task<Void, Never>] = []

    /// Compiles the bootstrap. With `bind == false` (validate mode) no threads or sockets are made.
    public init(options: ServerOptions, bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, bind: Bool = true) throws {
        self.options = options
        self.bootstrap = bootstrap
        _ = AnyTypeRegistry.meshproxy
        let loops: [any EventLoop]
        if bind {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.concurrency))
            self.group = group
            self.adminGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            loops = Array(group.makeIterator())
            shutdownRequested = adminGroup!.next().makePromise()
        } else {
            group = nil
            adminGroup = nil
            loops = []
            shutdownRequested = nil
        }
        ServerContext.workerCount = max(1, options.concurrency)
        Self.workerIndex = Dictionary(uniqueKeysWithValues: loops.enumerated().map { (ObjectIdentifier($0.element), $0.offset) })

        let connector = NIOUpstreamConnector()
        var clusters: [Cluster] = []
        var seen = Set<String>()
        for (index, config) in bootstrap.staticResources.clusters.enumerated() {
            let path = "static_resources.clusters[\(index)]"
            guard seen.insert(config.name).inserted else {
                throw ListenerConfigError(path + ".name", "cluster manager: duplicate cluster '\(config.name)'")
            }
            do {
                clusters.append(try Cluster(config, stats: stats, addedViaAPI: false, loops: loops, connector: connector))
            } catch let error as ClusterConfigError {
                throw ListenerConfigError(path + "." + error.fieldPath, error.reason)
            }
        }
        clusterManager = ClusterManager(clusters)
        var listeners: [ListenerRuntime] = []
        var listenerNames = Set<String>()
        for (index, config) in bootstrap.staticResources.listeners.enumerated() {
            let path = "static_resources.listeners[\(index)]"
            let runtime = try ListenerRuntime(config, path: path, clusters: clusterManager, store: stats)
            guard listenerNames.insert(runtime.name).inserted else {
                throw ListenerConfigError(path + ".name", "duplicate listener name '\(runtime.name)'")
            }
            listeners.append(runtime)
        }
        listenerRuntimes = listeners
        if bootstrap.hasDynamicResources {
            throw ListenerConfigError("dynamic_resources", "dynamic resources (xDS) are not implemented yet")
        }
        serverGauges = ServerGauges(store: stats)
        serverGauges.concurrency.set(Int64(options.concurrency))
    }

    nonisolated(unsafe) static var workerIndex: [ObjectIdentifier: Int] = [:]

    /// Binds admin and every listener; a listener that cannot bind fails start-up, as in Envoy.
    public func start() throws {
        guard let group, let adminGroup else { return }
        stateCode.store(3, ordering: .relaxed)
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
        for listener in listenerRuntimes {
            let holder = listener.connectionManager
            let listenerStats = listener.stats
            do {
                listener.channel = try ServerBootstrap(group: group)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.backlog, value: 1024)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            let worker = Server.workerIndex[ObjectIdentifier(channel.eventLoop)] ?? 0
                            try channel.pipeline.syncOperations.addHandler(
                                ListenerConnectionTracker(stats: listenerStats, worker: worker))
                            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                                withPipeliningAssistance: false, withErrorHandling: true)
                            try channel.pipeline.syncOperations.addHandler(HTTPConnectionManager(config: holder))
                        }
                    }
                    .bind(host: listener.host, port: listener.port).wait()
            } catch {
                throw ListenerConfigError("listener '\(listener.name)'",
                                          "cannot bind \(listener.host):\(listener.port): \(error)")
            }
            logger.info("listener '\(listener.name)' listening on \(listener.boundAddress)")
        }
        stateCode.store(0, ordering: .relaxed)
        serverGauges.live.set(1)
        logger.info("all listeners started; server LIVE")
    }

    /// Like Envoy's cluster warming: DNS clusters resolve once before listeners accept traffic (a
    /// name that does not resolve leaves its cluster empty: `no healthy upstream`), then refresh.
    private func resolveClustersBeforeListening() {
        let clusters = clusterManager.ordered.filter { $0.discoveryType != .static }
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
        dnsRefreshTasks = clusters.compactMap { $0.startDNSRefresh(using: resolver) }
    }

    /// Blocks until a shutdown signal or `/quitquitquit`, then drains and stops.
    public func runUntilShutdown() throws {
        guard let shutdownRequested else { return }
        let signals = [SIGTERM, SIGINT].map { signalNumber -> any DispatchSourceSignal in
            signal(signalNumber, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
            source.setEventHandler { shutdownRequested.succeed(()) }
            source.resume()
            return source
        }
        try shutdownRequested.futureResult.wait()
        signals.forEach { $0.cancel() }
        drainAndStop()
    }

    /// Stops accepting, lets requests in flight finish (bounded by --drain-time-s), then closes all.
    func drainAndStop() {
        logger.info("shutting down: draining listeners")
        stateCode.store(1, ordering: .relaxed)
        dnsRefreshTasks.forEach { $0.cancel() }
        for listener in listenerRuntimes { try? listener.channel?.close().wait() }
        let deadline = Date().addingTimeInterval(TimeInterval(options.drainTimeSeconds))
        while Date() < deadline, activeRequests() > 0 {
            usleep(20_000)
        }
        try? adminChannel?.close().wait()
        try? group?.syncShutdownGracefully()
        try? adminGroup?.syncShutdownGracefully()
        logger.info("exiting")
    }

    private func activeRequests() -> Int64 {
        listenerRuntimes.reduce(0) { $0 + $1.connectionManager.load().stats.downstreamRqActive.value }
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

    public var clusters: ClusterManager { clusterManager }

    public var listeners: [(name: String, address: String, host: String, port: Int)] {
        listenerRuntimes.map { listener in
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

    public func requestShutdown() {
        shutdownRequested?.succeed(())
    }
}
