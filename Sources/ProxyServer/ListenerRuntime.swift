import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyCore
import ProxyHTTP
import ProxyRouting
import ProxyTCP
import ProxyUpstream
import XDSAPI
import XDSResource

/// The network filter of a listener's filter chain.
enum NetworkFilter {
    case http(ConnectionManagerTemplate)
    case tcp(TCPProxyTemplate)
}

/// A listener: its address, its network filter (an HTTP connection manager or a TCP proxy) and the
/// compiled config new connections read, its stats, and once bound its socket. Mutated only by the
/// config manager (serially).
final class ListenerRuntime: @unchecked Sendable {
    let name: String
    let host: String
    let port: Int
    private(set) var config: Envoy_Config_Listener_V3_Listener
    private(set) var filter: NetworkFilter
    /// The HTTP connection manager, when the chain has one.
    var template: ConnectionManagerTemplate? {
        if case .http(let template) = filter { return template }
        return nil
    }
    let statScope: String
    let stats: ListenerStats
    /// Created with the first complete config; what every connection of this listener reads per request.
    private(set) var connectionManager: SnapshotHolder<ConnectionManagerConfig>?
    /// The same for a TCP proxy chain.
    private(set) var tcpProxy: SnapshotHolder<TCPProxyConfig>?
    var channel: (any Channel)?
    /// When (and as what version) this listener was last configured, for /config_dump.
    var versionInfo = ""
    var lastUpdated = Date()
    /// Counts filter-chain changes; connections from an older one drain.
    private var generation = 0
    /// The open connections, drained when the filter chain changes.
    let connections = ConnectionTracker()
    /// How long draining connections may stay open (`--drain-time-s`).
    var drainTime: TimeAmount = .seconds(600)

    init(_ listener: Envoy_Config_Listener_V3_Listener, path: String, store: StatsStore) throws {
        let (host, port, filter, scope) = try Self.parse(listener, path: path, store: store)
        self.name = listener.name.isEmpty ? "\(host):\(port)" : listener.name
        self.host = host
        self.port = port
        self.config = listener
        self.filter = filter
        self.statScope = scope
        self.stats = ListenerStats(scope: scope, store: store)
    }

    static func parse(_ listener: Envoy_Config_Listener_V3_Listener, path: String, store: StatsStore) throws
        -> (String, Int, NetworkFilter, String)
    {
        guard case .socketAddress(let socket)? = listener.address.address else {
            throw ListenerConfigError(path + ".address", "a socket_address is required")
        }
        guard case .portValue(let port)? = socket.portSpecifier, port <= 65535 else {
            throw ListenerConfigError(path + ".address.socket_address.port_value", "a port value is required")
        }
        guard listener.filterChains.count == 1, !listener.hasDefaultFilterChain else {
            throw ListenerConfigError(path + ".filter_chains", "exactly one filter chain is supported so far")
        }
        guard listener.listenerFilters.isEmpty else {
            throw ListenerConfigError(path + ".listener_filters", "listener filters are not supported yet")
        }
        let chain = listener.filterChains[0]
        if chain.hasTransportSocket {
            throw ListenerConfigError(path + ".filter_chains[0].transport_socket", "TLS is not supported yet")
        }
        let scope = listener.statPrefix.isEmpty
            ? "\(socket.address)_\(port)".replacingOccurrences(of: ":", with: "_")
            : listener.statPrefix
        let filterPath = path + ".filter_chains[0].filters[0].typed_config"
        guard chain.filters.count == 1, case .typedConfig(let any)? = chain.filters[0].configType else {
            let filter = chain.filters.first
            throw ListenerConfigError(path + ".filter_chains[0].filters",
                                      "Didn't find a registered implementation for '\(filter?.name ?? "")' with type URL: '\(filter?.typedConfig.typeURL ?? "")'")
        }
        switch any.typeURL {
        case TypeURL.prefix + HCMProto.protoMessageName:
            let template = try ConnectionManagerTemplate.compile(
                try HCMProto(unpackingAny: any), path: filterPath, listenerStatScope: scope, store: store)
            return (socket.address, Int(port), .http(template), scope)
        case TypeURL.prefix + TCPProxyProto.protoMessageName:
            let template = try TCPProxyTemplate(try TCPProxyProto(unpackingAny: any), path: filterPath, store: store)
            return (socket.address, Int(port), .tcp(template), scope)
        default:
            throw ListenerConfigError(path + ".filter_chains[0].filters",
                                      "Didn't find a registered implementation for '\(chain.filters[0].name)' with type URL: '\(any.typeURL)'")
        }
    }

    /// Takes a new Listener message for the same address: the socket stays; new connections use the
    /// new filter chain at once, and connections from before a filter-chain change drain.
    func update(_ listener: Envoy_Config_Listener_V3_Listener, filter: NetworkFilter) {
        if listener.filterChains != config.filterChains {
            generation += 1
            connections.drainAll(closeAfter: drainTime)
        }
        self.config = listener
        self.filter = filter
    }

    /// Publishes the config for the current clusters and routes; false while its routes are missing.
    @discardableResult
    func refresh(clusters: ClusterManager, routes: [String: RouteTable]) -> Bool {
        let template: ConnectionManagerTemplate
        switch filter {
        case .tcp(let tcp):
            let compiled = tcp.config(clusters: clusters)
            if let tcpProxy { tcpProxy.store(compiled) } else { tcpProxy = SnapshotHolder(compiled) }
            return true
        case .http(let http):
            template = http
        }
        guard let compiled = template.config(clusters: clusters, routes: routes, generation: generation) else {
            return connectionManager != nil
        }
        if let connectionManager {
            connectionManager.store(compiled)
        } else {
            connectionManager = SnapshotHolder(compiled)
        }
        return true
    }

    var isWarm: Bool { connectionManager != nil || tcpProxy != nil }

    /// Binds the socket; new connections get the HCM's codec and a connection manager.
    func bind(group: any EventLoopGroup) async throws {
        guard isWarm else { return }
        let holder = connectionManager
        let tcpHolder = tcpProxy
        let listenerStats = stats
        let tracker = connections
        do {
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 1024)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let worker = Server.workerIndex[ObjectIdentifier(channel.eventLoop)] ?? 0
                        try channel.pipeline.syncOperations.addHandler(
                            ListenerConnectionTracker(stats: listenerStats, worker: worker))
                        if let holder {
                            try DownstreamPipeline.configure(channel, config: holder, tracker: tracker)
                        } else if let tcpHolder {
                            try channel.pipeline.syncOperations.addHandler(TCPProxyHandler(config: tcpHolder))
                        }
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            throw ListenerConfigError("listener '\(name)'", "cannot bind \(host):\(port): \(error)")
        }
    }

    /// Stops accepting; connections already open finish their requests.
    func close() async {
        try? await channel?.close()
        channel = nil
    }

    /// `127.0.0.1:15001`, or the bound address once bound (port 0 picks one).
    var boundAddress: String {
        if let address = channel?.localAddress, let port = address.port {
            let ip = address.ipAddress ?? host
            return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        }
        return host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }
}

/// `listener.<address>.*` stats, with per-worker connection counts.
final class ListenerStats: Sendable {
    let downstreamCxTotal, downstreamCxDestroy: Counter
    let downstreamCxActive: Gauge
    let workerCxTotal: [Counter]
    let workerCxActive: [Gauge]
    private static let maxWorkers = 256

    init(scope: String, store: StatsStore) {
        let prefix = "listener.\(scope)."
        let tags = [StatTags.Tag("envoy_listener_address", scope)]
        downstreamCxTotal = store.counter(prefix + "downstream_cx_total",
                                          StatTags(extractedName: "listener.downstream_cx_total", tags: tags))
        downstreamCxDestroy = store.counter(prefix + "downstream_cx_destroy",
                                            StatTags(extractedName: "listener.downstream_cx_destroy", tags: tags))
        downstreamCxActive = store.gauge(prefix + "downstream_cx_active",
                                         StatTags(extractedName: "listener.downstream_cx_active", tags: tags))
        for stat in ["downstream_cx_overflow", "downstream_cx_transport_socket_connect_timeout",
                     "downstream_global_cx_overflow", "downstream_pre_cx_timeout", "no_filter_chain_match"] {
            _ = store.counter(prefix + stat, StatTags(extractedName: "listener." + stat, tags: tags))
        }
        _ = store.gauge(prefix + "downstream_pre_cx_active",
                        StatTags(extractedName: "listener.downstream_pre_cx_active", tags: tags))
        let count = min(Self.maxWorkers, max(1, ServerContext.workerCount))
        workerCxTotal = (0..<count).map { index in
            store.counter(prefix + "worker_\(index).downstream_cx_total",
                          StatTags(extractedName: "listener.worker_downstream_cx_total",
                                   tags: [StatTags.Tag("envoy_worker_id", String(index))] + tags))
        }
        workerCxActive = (0..<count).map { index in
            store.gauge(prefix + "worker_\(index).downstream_cx_active",
                        StatTags(extractedName: "listener.worker_downstream_cx_active",
                                 tags: [StatTags.Tag("envoy_worker_id", String(index))] + tags))
        }
    }
}

/// Counts a downstream connection on its listener and worker; first handler of every connection.
final class ListenerConnectionTracker: ChannelInboundHandler, Sendable {
    typealias InboundIn = NIOAny
    let stats: ListenerStats
    let worker: Int

    init(stats: ListenerStats, worker: Int) {
        self.stats = stats
        self.worker = min(worker, stats.workerCxTotal.count - 1)
    }

    func channelActive(context: ChannelHandlerContext) {
        stats.downstreamCxTotal.increment()
        stats.downstreamCxActive.increment()
        stats.workerCxTotal[worker].increment()
        stats.workerCxActive[worker].increment()
        ServerContext.totalConnections.wrappingAdd(1, ordering: .relaxed)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        stats.downstreamCxActive.decrement()
        stats.workerCxActive[worker].decrement()
        stats.downstreamCxDestroy.increment()
        ServerContext.totalConnections.wrappingSubtract(1, ordering: .relaxed)
        context.fireChannelInactive()
    }
}
