import NIOCore
import ProxyCore
import ProxyTLS
import ProxyUpstream
import Synchronization
import XDSAPI
import XDSResource

/// A cluster's UpstreamTlsContext and the TLS context built from it, rebuilt when an SDS secret it
/// names changes. Connections read it once each, when they open.
final class UpstreamTransportSocket: Sendable {
    let spec: TLSContextSpec
    /// The cluster is `auto_config`: ALPN decides HTTP/2 or HTTP/1.1 per host.
    let autoALPN: Bool
    /// `auto_san_validation`: the server must carry the request's SNI (`auto_sni`) as a DNS SAN.
    let validatesRequestSNI: Bool
    private let stats: TLSStats
    private let state = Mutex<(context: TLSContext?, builtFrom: [String: SecretProto])>((nil, [:]))

    init(spec: TLSContextSpec, clusterName: String, autoALPN: Bool, validatesRequestSNI: Bool, store: StatsStore) {
        self.spec = spec
        self.autoALPN = autoALPN
        self.validatesRequestSNI = validatesRequestSNI
        stats = TLSStats(scope: "cluster.\(clusterName)", kind: "cluster",
                         tags: [StatTags.Tag("envoy_cluster_name", clusterName)], store: store)
    }

    /// The context new connections use; nil while a secret it names has not arrived.
    var context: TLSContext? { state.withLock { $0.context } }

    func refresh(secrets: [String: SecretProto]) throws {
        let used = Dictionary(uniqueKeysWithValues: spec.secretReferences.compactMap { reference in
            secrets[reference.key].map { (reference.key, $0) }
        })
        if state.withLock({ $0.context != nil && $0.builtFrom == used }) { return }
        guard let built = try spec.build(secrets: secrets, stats: stats) else { return }
        state.withLock { $0 = (built, used) }
    }
}

extension Cluster {
    /// A cluster with its transport socket applied: TLS to its hosts when it has an UpstreamTlsContext.
    static func make(_ config: Envoy_Config_Cluster_V3_Cluster, stats: StatsStore, addedViaAPI: Bool,
                     loops: [any EventLoop], secrets: [String: SecretProto], localZone: LocalZone? = nil) throws -> Cluster {
        var transport: UpstreamTransportSocket?
        if config.hasTransportSocket,
           var spec = try TLSContextSpec.transportSocket(config.transportSocket, side: .client, path: "transport_socket") {
            // Envoy offers h2 by ALPN to an HTTP/2 cluster that names no protocols, and both to auto_config.
            let upstream = try? Cluster.httpProtocol(of: config).protocol
            if spec.alpn.isEmpty, upstream == .http2 { spec.alpn = ["h2"] }
            if spec.alpn.isEmpty, upstream == .auto { spec.alpn = ["h2", "http/1.1"] }
            transport = UpstreamTransportSocket(spec: spec, clusterName: config.name, autoALPN: upstream == .auto,
                                                validatesRequestSNI: (try? Cluster.autoSNI(of: config))??.sanValidation ?? false,
                                                store: stats)
            try transport?.refresh(secrets: secrets)
            if let context = transport?.context, transport?.validatesRequestSNI == true, context.trustedCA.isEmpty {
                throw FieldError("typed_extension_protocol_options.upstream_http_protocol_options.auto_san_validation",
                                 "validating the SAN needs a validation context with a trusted CA")
            }
        }
        return try Cluster(config, stats: stats, addedViaAPI: addedViaAPI, loops: loops,
                           connector: NIOUpstreamConnector(
                               transport: transport, keepalive: TCPKeepalive(config),
                               bufferLimit: config.hasPerConnectionBufferLimitBytes
                                   ? Int(config.perConnectionBufferLimitBytes.value) : ChannelOptions.Types.WriteBufferWaterMark.defaultBufferLimit),
                           localZone: localZone)
    }

    /// The TLS state of a cluster made by `make`, for secret refreshes and `/certs`.
    var transportSocket: UpstreamTransportSocket? { (connector as? NIOUpstreamConnector)?.transport }
}
