import NIOCore
import ProxyCore
import ProxyHTTP
import ProxyRouting
import ProxyTCP
import ProxyTLS
import ProxyUpstream
import XDSAPI
import XDSResource

/// The network filter of a listener's filter chain.
enum NetworkFilter {
    case http(ConnectionManagerTemplate)
    case tcp(TCPProxyTemplate)
}

/// One filter chain of a listener: its match, its network filter, and once its routes are known the
/// compiled config its connections read. Kept across listener updates while its proto is unchanged.
/// Mutated only by the config manager; connections read the holders.
final class FilterChainRuntime: @unchecked Sendable {
    let proto: Envoy_Config_Listener_V3_FilterChain
    /// The listener's `per_connection_buffer_limit_bytes`.
    let bufferLimit: Int
    let match: FilterChainMatch
    let filter: NetworkFilter
    private(set) var connectionManager: SnapshotHolder<ConnectionManagerConfig>?
    private(set) var tcpProxy: SnapshotHolder<TCPProxyConfig>?
    /// The chain's DownstreamTlsContext, when it terminates TLS.
    let tlsSpec: TLSContextSpec?
    private let tlsStats: TLSStats?
    /// The built TLS context new handshakes use; nil while an SDS secret it names has not arrived.
    private(set) var tls: SnapshotHolder<TLSContext>?
    /// The secrets `tls` was built from, so unrelated secret pushes do not rebuild it.
    private var tlsBuiltFrom: [String: SecretProto] = [:]

    init(_ proto: Envoy_Config_Listener_V3_FilterChain, path: String, listenerStatScope: String, store: StatsStore,
         isDefault: Bool = false, outbound: Bool = false, secrets: [String: SecretProto] = [:],
         bufferLimit: Int = ChannelOptions.Types.WriteBufferWaterMark.defaultBufferLimit) throws {
        self.proto = proto
        self.bufferLimit = bufferLimit
        if proto.hasTransportSocket {
            tlsSpec = try TLSContextSpec.transportSocket(proto.transportSocket, side: .server, path: path + ".transport_socket")
        } else {
            tlsSpec = nil
        }
        tlsStats = tlsSpec.map { _ in
            TLSStats(scope: "listener.\(listenerStatScope)", kind: "listener",
                     tags: [StatTags.Tag("envoy_listener_address", listenerStatScope)], store: store)
        }
        if isDefault, proto.hasFilterChainMatch {
            throw ListenerConfigError(path + ".filter_chain_match", "the default filter chain has no match")
        }
        match = proto.hasFilterChainMatch ? try FilterChainMatch(proto.filterChainMatch, path: path + ".filter_chain_match")
                                          : FilterChainMatch()
        let filterPath = path + ".filters[0].typed_config"
        guard proto.filters.count == 1, case .typedConfig(let any)? = proto.filters[0].configType else {
            let first = proto.filters.first
            throw ListenerConfigError(path + ".filters",
                                      "Didn't find a registered implementation for '\(first?.name ?? "")' with type URL: '\(first?.typedConfig.typeURL ?? "")'")
        }
        switch any.typeURL {
        case TypeURL.prefix + HCMProto.protoMessageName:
            filter = .http(try ConnectionManagerTemplate.compile(
                try HCMProto(unpackingAny: any), path: filterPath, listenerStatScope: listenerStatScope, store: store,
                outbound: outbound))
        case TypeURL.prefix + TCPProxyProto.protoMessageName:
            filter = .tcp(try TCPProxyTemplate(try TCPProxyProto(unpackingAny: any), path: filterPath, store: store))
        default:
            throw ListenerConfigError(path + ".filters",
                                      "Didn't find a registered implementation for '\(proto.filters[0].name)' with type URL: '\(any.typeURL)'")
        }
        // Inline and static certificates are checked now, so a bad key is this listener's error.
        try refreshTLS(secrets: secrets)
    }

    var template: ConnectionManagerTemplate? {
        if case .http(let template) = filter { return template }
        return nil
    }

    var isWarm: Bool { (connectionManager != nil || tcpProxy != nil) && (tlsSpec == nil || tls != nil) }

    /// Builds (or rebuilds, when a secret it names changed) the chain's TLS context. Throws for a
    /// context that cannot be built; a context that was serving keeps serving then.
    func refreshTLS(secrets: [String: SecretProto]) throws {
        guard let tlsSpec, let tlsStats else { return }
        let used = Dictionary(uniqueKeysWithValues: tlsSpec.secretReferences.compactMap { reference in
            secrets[reference.key].map { (reference.key, $0) }
        })
        if tls != nil, used == tlsBuiltFrom { return }
        guard let built = try tlsSpec.build(secrets: secrets, stats: tlsStats) else { return }
        tlsBuiltFrom = used
        if let tls { tls.store(built) } else { tls = SnapshotHolder(built) }
    }

    /// The TLS context connections use now, for `/certs`.
    var currentTLS: TLSContext? { tls?.load() }

    /// Compiles against the current clusters and routes; false while an RDS route is missing.
    @discardableResult
    func refresh(clusters: ClusterManager, routes: [String: RouteTable], generation: Int) -> Bool {
        switch filter {
        case .tcp(let tcp):
            let compiled = tcp.config(clusters: clusters)
            if let tcpProxy { tcpProxy.store(compiled) } else { tcpProxy = SnapshotHolder(compiled) }
            return true
        case .http(let template):
            guard let compiled = template.config(clusters: clusters, routes: routes, generation: generation,
                                                 retryBufferLimit: bufferLimit) else {
                return connectionManager != nil
            }
            if let connectionManager { connectionManager.store(compiled) } else { connectionManager = SnapshotHolder(compiled) }
            return true
        }
    }

    /// Installs this chain's handlers on a new connection: TLS first when the chain terminates it,
    /// the network filter once the handshake is done (HTTP's codec chosen by ALPN).
    func install(on channel: any Channel, tracker: ConnectionTracker) throws {
        try channel.syncOptions?.setOption(
            .writeBufferWaterMark, value: ChannelOptions.Types.WriteBufferWaterMark(perConnectionBufferLimit: bufferLimit))
        guard let tls = tls?.load() else {
            try installFilter(on: channel, tracker: tracker, negotiatedProtocol: nil)
            return
        }
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(tls.makeServerHandler())
        try sync.addHandler(TLSHandshakeHandler(context: tls) { [self] channel, negotiated, info in
            try installFilter(on: channel, tracker: tracker, negotiatedProtocol: negotiated, tls: info)
        })
    }

    private func installFilter(on channel: any Channel, tracker: ConnectionTracker, negotiatedProtocol: String?,
                               tls: DownstreamTLSInfo? = nil) throws {
        if let connectionManager {
            try DownstreamPipeline.configure(channel, config: connectionManager, tracker: tracker,
                                             negotiatedProtocol: negotiatedProtocol, tls: tls)
        } else if let tcpProxy {
            try channel.pipeline.syncOperations.addHandler(TCPProxyHandler(config: tcpProxy))
        } else {
            channel.close(promise: nil)
        }
    }
}

/// A listener's filter chains as connections see them: published whole, once every chain is warm.
final class FilterChainSet: Sendable {
    let chains: [FilterChainRuntime]
    let matches: [FilterChainMatch]
    let defaultChain: FilterChainRuntime?
    let inspection: ListenerFilters

    init(chains: [FilterChainRuntime], defaultChain: FilterChainRuntime?, inspection: ListenerFilters) {
        self.chains = chains
        self.matches = chains.map(\.match)
        self.defaultChain = defaultChain
        self.inspection = inspection
    }

    /// The chain every connection gets, when the listener has one chain that matches all.
    var onlyChain: FilterChainRuntime? {
        if chains.count == 1, !matches[0].isRestrictive { return chains[0] }
        if chains.isEmpty { return defaultChain }
        return nil
    }

    /// The chain for a connection; nil when none matches and there is no default chain.
    func select(_ info: ConnectionMatchInfo) -> FilterChainRuntime? {
        if let onlyChain { return onlyChain }
        return FilterChainMatch.select(matches, for: info).map { chains[$0] } ?? defaultChain
    }

    var all: [FilterChainRuntime] { chains + (defaultChain.map { [$0] } ?? []) }
}

/// The listener filters meshproxy runs before choosing a chain (Envoy's tls_inspector and
/// http_inspector), with `listener_filters_timeout`.
struct ListenerFilters: Sendable, Equatable {
    var tlsInspector = false
    var httpInspector = false
    /// nil: no timeout.
    var timeout: TimeAmount? = .seconds(15)
    var continueOnTimeout = false

    var inspects: Bool { tlsInspector || httpInspector }
}
