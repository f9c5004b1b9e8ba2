import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyCore
import ProxyHTTP
import ProxyRouting
import ProxyTCP
import ProxyTLS
import ProxyUpstream
import XDSAPI
import XDSResource

/// A listener: its address, its filter chains (each an HTTP connection manager or a TCP proxy)
/// and the compiled config new connections read, its stats, and once bound its socket. Mutated only
/// by the config manager (serially).
final class ListenerRuntime: @unchecked Sendable {
    let name: String
    let host: String
    let port: Int
    private(set) var config: Envoy_Config_Listener_V3_Listener
    /// The chains of the latest config; published to connections once all are warm.
    private(set) var chains: [FilterChainRuntime]
    private(set) var defaultChain: FilterChainRuntime?
    private(set) var inspection: ListenerFilters
    let statScope: String
    let stats: ListenerStats
    /// What new connections choose from; nil until every chain was warm once.
    private(set) var published: SnapshotHolder<FilterChainSet>?
    var channel: (any Channel)?
    /// When (and as what version) this listener was last configured, for /config_dump.
    var versionInfo = ""
    var lastUpdated = Date()
    /// Counts filter-chain changes; connections from an older one drain.
    private var generation = 0
    /// The open connections, drained when the filter chains change.
    let connections = ConnectionTracker()
    /// How long draining connections may stay open (`--drain-time-s`).
    var drainTime: TimeAmount = .seconds(600)

    /// A listener message checked and compiled, before it becomes (or updates) a runtime.
    struct Parsed {
        let host: String
        let port: Int
        let scope: String
        let chains: [FilterChainRuntime]
        let defaultChain: FilterChainRuntime?
        let inspection: ListenerFilters
    }

    init(_ listener: Envoy_Config_Listener_V3_Listener, path: String, store: StatsStore,
         secrets: [String: SecretProto] = [:]) throws {
        let parsed = try Self.parse(listener, path: path, store: store, secrets: secrets)
        self.name = listener.name.isEmpty ? "\(parsed.host):\(parsed.port)" : listener.name
        self.host = parsed.host
        self.port = parsed.port
        self.config = listener
        self.chains = parsed.chains
        self.defaultChain = parsed.defaultChain
        self.inspection = parsed.inspection
        self.statScope = parsed.scope
        self.stats = ListenerStats(scope: parsed.scope, store: store)
    }

    /// The HTTP connection managers of every chain (RDS subscriptions, config dump, validation).
    var templates: [ConnectionManagerTemplate] {
        (chains + (defaultChain.map { [$0] } ?? [])).compactMap(\.template)
    }

    /// Checks and compiles a listener. `reuse` are chains of the listener it replaces: a chain whose
    /// proto did not change keeps its runtime (and the config its connections read).
    static func parse(_ listener: Envoy_Config_Listener_V3_Listener, path: String, store: StatsStore,
                      reuse: [FilterChainRuntime] = [], secrets: [String: SecretProto] = [:]) throws -> Parsed {
        guard case .socketAddress(let socket)? = listener.address.address else {
            throw ListenerConfigError(path + ".address", "a socket_address is required")
        }
        guard case .portValue(let port)? = socket.portSpecifier, port <= 65535 else {
            throw ListenerConfigError(path + ".address.socket_address.port_value", "a port value is required")
        }
        guard !listener.filterChains.isEmpty || listener.hasDefaultFilterChain else {
            throw ListenerConfigError(path + ".filter_chains", "at least one filter chain is required")
        }
        let inspection = try Self.listenerFilters(listener, path: path)
        let scope = listener.statPrefix.isEmpty
            ? "\(socket.address)_\(port)".replacingOccurrences(of: ":", with: "_")
            : listener.statPrefix
        // Envoy's per_connection_buffer_limit_bytes: the connections' write water marks, and what a request
        // may buffer for retries.
        let bufferLimit = listener.hasPerConnectionBufferLimitBytes
            ? Int(listener.perConnectionBufferLimitBytes.value) : ChannelOptions.Types.WriteBufferWaterMark.defaultBufferLimit
        func chain(_ proto: Envoy_Config_Listener_V3_FilterChain, path: String, isDefault: Bool) throws -> FilterChainRuntime {
            if let same = reuse.first(where: { $0.proto == proto && $0.bufferLimit == bufferLimit }) { return same }
            return try FilterChainRuntime(proto, path: path, listenerStatScope: scope, store: store, isDefault: isDefault,
                                          outbound: listener.trafficDirection == .outbound, secrets: secrets,
                                          bufferLimit: bufferLimit)
        }
        var chains: [FilterChainRuntime] = []
        for (index, proto) in listener.filterChains.enumerated() {
            let chainPath = "\(path).filter_chains[\(index)]"
            if let earlier = listener.filterChains[..<index].firstIndex(where: { $0.filterChainMatch == proto.filterChainMatch }) {
                throw ListenerConfigError(chainPath + ".filter_chain_match",
                                          "multiple filter chains with the same matching rules are defined (see filter_chains[\(earlier)])")
            }
            chains.append(try chain(proto, path: chainPath, isDefault: false))
        }
        if !inspection.tlsInspector, chains.contains(where: { !$0.match.transportProtocol.isEmpty }) {
            throw ListenerConfigError(path + ".listener_filters",
                                      "a filter chain matches on transport_protocol, which needs envoy.filters.listener.tls_inspector")
        }
        if !inspection.tlsInspector, chains.contains(where: { !$0.match.serverNames.isEmpty }) {
            throw ListenerConfigError(path + ".listener_filters",
                                      "a filter chain matches on server_names, which needs envoy.filters.listener.tls_inspector")
        }
        if !inspection.httpInspector, !inspection.tlsInspector,
           chains.contains(where: { !$0.match.applicationProtocols.isEmpty }) {
            throw ListenerConfigError(path + ".listener_filters",
                                      "a filter chain matches on application_protocols, which needs envoy.filters.listener.tls_inspector or http_inspector")
        }
        let defaultChain = listener.hasDefaultFilterChain
            ? try chain(listener.defaultFilterChain, path: path + ".default_filter_chain", isDefault: true) : nil
        return Parsed(host: socket.address, port: Int(port), scope: scope, chains: chains, defaultChain: defaultChain,
                      inspection: inspection)
    }

    static let tlsInspectorType = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
    static let httpInspectorType = "envoy.extensions.filters.listener.http_inspector.v3.HttpInspector"

    private static func listenerFilters(_ listener: Envoy_Config_Listener_V3_Listener, path: String) throws -> ListenerFilters {
        var filters = ListenerFilters()
        for (index, filter) in listener.listenerFilters.enumerated() {
            let typeURL = filter.typedConfig.typeURL
            if typeURL == TypeURL.prefix + tlsInspectorType || (typeURL.isEmpty && filter.name == "envoy.filters.listener.tls_inspector") {
                filters.tlsInspector = true
            } else if typeURL == TypeURL.prefix + httpInspectorType || (typeURL.isEmpty && filter.name == "envoy.filters.listener.http_inspector") {
                filters.httpInspector = true
            } else {
                throw ListenerConfigError("\(path).listener_filters[\(index)]",
                                          "Didn't find a registered implementation for '\(filter.name)' with type URL: '\(typeURL)'")
            }
            if filter.hasFilterDisabled {
                throw ListenerConfigError("\(path).listener_filters[\(index)].filter_disabled", "not supported yet")
            }
        }
        if listener.hasListenerFiltersTimeout {
            let ms = listener.listenerFiltersTimeout.milliseconds
            filters.timeout = ms > 0 ? .milliseconds(ms) : nil
        }
        filters.continueOnTimeout = listener.continueOnListenerFiltersTimeout
        return filters
    }

    /// Takes a new Listener message for the same address: the socket stays; new connections use the
    /// new filter chains once they are warm, and connections from before a change drain.
    func update(_ listener: Envoy_Config_Listener_V3_Listener, parsed: Parsed) {
        if listener.filterChains != config.filterChains || listener.defaultFilterChain != config.defaultFilterChain {
            generation += 1
            connections.drainAll(closeAfter: drainTime)
        }
        self.config = listener
        self.chains = parsed.chains
        self.defaultChain = parsed.defaultChain
        self.inspection = parsed.inspection
    }

    /// Compiles every chain for the current clusters and routes and publishes them when all are
    /// warm; false while the listener has never been warm.
    @discardableResult
    func refresh(clusters: ClusterManager, routes: [String: RouteTable]) -> Bool {
        let all = chains + (defaultChain.map { [$0] } ?? [])
        var warm = true
        for chain in all where !chain.refresh(clusters: clusters, routes: routes, generation: generation) || !chain.isWarm {
            warm = false
        }
        if warm {
            let set = FilterChainSet(chains: chains, defaultChain: defaultChain, inspection: inspection)
            if let published { published.store(set) } else { published = SnapshotHolder(set) }
        }
        return published != nil
    }

    var isWarm: Bool { published != nil }

    /// Builds or rebuilds the TLS contexts of every chain from the secrets known now; returns what
    /// could not be built (those chains keep what they had).
    func refreshTLS(secrets: [String: SecretProto]) -> [String] {
        var errors: [String] = []
        for chain in chains + (defaultChain.map { [$0] } ?? []) {
            do {
                try chain.refreshTLS(secrets: secrets)
            } catch {
                errors.append("\(name): \(error)")
            }
        }
        return errors
    }

    /// The SDS secrets this listener's chains name.
    var secretReferences: [TLSContextSpec.SecretReference] {
        (chains + (defaultChain.map { [$0] } ?? [])).flatMap { $0.tlsSpec?.secretReferences ?? [] }
    }

    /// The connection managers connections use now (for the active-request count at shutdown).
    var activeConnectionManagers: [SnapshotHolder<ConnectionManagerConfig>] {
        published?.load().all.compactMap(\.connectionManager) ?? []
    }

    /// Binds the socket; each new connection gets the filter chain it matches.
    func bind(group: any EventLoopGroup) async throws {
        guard let published else { return }
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
                        let sync = channel.pipeline.syncOperations
                        let chains = published.load()
                        // A connection counts once it has a filter chain, as in Envoy: one that matches
                        // none, or whose listener filters time out, is closed without being counted.
                        if chains.inspection.inspects {
                            try sync.addHandler(ListenerInspector(chains: chains, stats: listenerStats) { chain, channel in
                                listenerStats.countConnection(channel, worker: worker)
                                try chain.install(on: channel, tracker: tracker)
                            })
                            return
                        }
                        guard let chain = chains.onlyChain
                            ?? chains.select(ConnectionMatchInfo(local: channel.localAddress, remote: channel.remoteAddress))
                        else {
                            listenerStats.noFilterChainMatch.increment()
                            ListenerInspector.reset(channel)
                            return
                        }
                        listenerStats.countConnection(channel, worker: worker)
                        try chain.install(on: channel, tracker: tracker)
                    }
                }
                .bind(host: host, port: port).get()
        } catch {
            throw ListenerConfigError("listener '\(name)'", "cannot bind \(host):\(port): \(error)")
        }
    }

    /// Stops accepting for good (`/drain_listeners`): the socket closes, connections drain.
    func stopAccepting() async {
        try? await channel?.close()
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
    let downstreamCxTotal, downstreamCxDestroy, noFilterChainMatch, downstreamPreCxTimeout: Counter
    let downstreamCxActive, downstreamPreCxActive: Gauge
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
                     "downstream_global_cx_overflow"] {
            _ = store.counter(prefix + stat, StatTags(extractedName: "listener." + stat, tags: tags))
        }
        noFilterChainMatch = store.counter(prefix + "no_filter_chain_match",
                                           StatTags(extractedName: "listener.no_filter_chain_match", tags: tags))
        downstreamPreCxTimeout = store.counter(prefix + "downstream_pre_cx_timeout",
                                               StatTags(extractedName: "listener.downstream_pre_cx_timeout", tags: tags))
        downstreamPreCxActive = store.gauge(prefix + "downstream_pre_cx_active",
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

extension ListenerStats {
    /// Counts a connection now and again when its channel closes. Not a handler in the
    /// connection's pipeline: there every read and read-complete event would pass through it
    /// (~500 instructions an HTTP/1.1 request) for two updates in the connection's life.
    func countConnection(_ channel: any Channel, worker: Int) {
        let worker = min(worker, workerCxTotal.count - 1)
        downstreamCxTotal.increment()
        downstreamCxActive.increment()
        workerCxTotal[worker].increment()
        workerCxActive[worker].increment()
        ServerContext.totalConnections.wrappingAdd(1, ordering: .relaxed)
        channel.closeFuture.whenComplete { [self] _ in
            downstreamCxActive.decrement()
            workerCxActive[worker].decrement()
            downstreamCxDestroy.increment()
            ServerContext.totalConnections.wrappingSubtract(1, ordering: .relaxed)
        }
    }
}
