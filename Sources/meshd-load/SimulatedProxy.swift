import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import SwiftProtobuf
import Synchronization
import XDSAPI

typealias DiscoveryRequest = Envoy_Service_Discovery_V3_DiscoveryRequest
typealias DiscoveryResponse = Envoy_Service_Discovery_V3_DiscoveryResponse

enum TypeURL {
    static let cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    static let endpoints = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    static let listener = "type.googleapis.com/envoy.config.listener.v3.Listener"
    static let route = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    static let connectionManager =
        "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
}

/// One proxy on its own ADS stream and connection, as an Envoy is: state of the world, CDS and LDS
/// wildcard first, then EDS and RDS for the names those responses carry, every response ACKed.
/// Records when each EDS version and each CDS response arrived.
final class SimulatedProxy: Sendable {
    struct State {
        var versions: [String: String] = [:]
        /// EDS version -> when it first arrived.
        var endpointsSeen: [String: ContinuousClock.Instant] = [:]
        /// Clusters in the last CDS response, and when it arrived.
        var clusters = (count: 0, at: ContinuousClock.now)
        var subscribed: [String: Set<String>] = [TypeURL.endpoints: [], TypeURL.route: []]
    }

    let index: Int
    let state = Mutex(State())
    private let names: ResourceNames

    init(index: Int, names: ResourceNames) {
        self.index = index
        self.names = names
    }

    var ready: Bool {
        state.withLock { state in
            [TypeURL.cluster, TypeURL.listener, TypeURL.endpoints, TypeURL.route].allSatisfy { state.versions[$0] != nil }
        }
    }

    var endpointsVersion: String? { state.withLock { $0.versions[TypeURL.endpoints] } }

    /// Streams until the task is cancelled or meshd ends the stream.
    func run(host: String, port: Int, node: Envoy_Config_Core_V3_Node) async throws {
        let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: host, port: port),
                                                       transportSecurity: .plaintext)
        let (requests, outbox) = AsyncStream<DiscoveryRequest>.makeStream()
        var first = DiscoveryRequest()
        first.node = node
        first.typeURL = TypeURL.cluster
        outbox.yield(first)
        var listeners = DiscoveryRequest()
        listeners.typeURL = TypeURL.listener
        outbox.yield(listeners)
        defer { outbox.finish() }
        try await withGRPCClient(transport: transport) { client in
            let ads = Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Client(wrapping: client)
            try await ads.streamAggregatedResources(requestProducer: { writer in
                for await request in requests { try await writer.write(request) }
            }, onResponse: { response in
                for try await message in response.messages {
                    for request in self.handle(message, at: .now) { outbox.yield(request) }
                }
            })
        }
    }

    /// The ACK for `response`, and a new subscription when the names it implies changed.
    func handle(_ response: DiscoveryResponse, at now: ContinuousClock.Instant) -> [DiscoveryRequest] {
        let type = response.typeURL
        var wanted: (type: String, names: Set<String>)?
        if type == TypeURL.cluster {
            wanted = (TypeURL.endpoints, Set(response.resources.compactMap(names.endpointsName(ofCluster:))))
        } else if type == TypeURL.listener {
            wanted = (TypeURL.route, response.resources.reduce(into: Set()) { $0.formUnion(names.routeNames(ofListener: $1)) })
        }
        return state.withLock { state in
            if type == TypeURL.endpoints, state.endpointsSeen[response.versionInfo] == nil {
                state.endpointsSeen[response.versionInfo] = now
            }
            if type == TypeURL.cluster { state.clusters = (response.resources.count, now) }
            state.versions[type] = response.versionInfo
            var ack = DiscoveryRequest()
            ack.typeURL = type
            ack.versionInfo = response.versionInfo
            ack.responseNonce = response.nonce
            ack.resourceNames = state.subscribed[type].map { $0.sorted() } ?? []
            guard let wanted, wanted.names != state.subscribed[wanted.type] else { return [ack] }
            state.subscribed[wanted.type] = wanted.names
            var subscription = DiscoveryRequest()
            subscription.typeURL = wanted.type
            subscription.versionInfo = state.versions[wanted.type] ?? ""
            subscription.resourceNames = wanted.names.sorted()
            return [ack, subscription]
        }
    }
}

/// The names a cluster or listener leads a proxy to subscribe to, decoded once per distinct
/// resource: every proxy receives the same ones, and decoding each copy would make the load tool,
/// not meshd, what a large push measures.
final class ResourceNames: Sendable {
    private let endpoints = Mutex<[Data: String?]>([:])
    private let routes = Mutex<[Data: [String]]>([:])

    func endpointsName(ofCluster resource: Google_Protobuf_Any) -> String? {
        if let known = endpoints.withLock({ $0[resource.value] }) { return known }
        let cluster = try? Envoy_Config_Cluster_V3_Cluster(serializedBytes: resource.value)
        let name = cluster.flatMap { cluster in
            cluster.type == .eds ? (cluster.edsClusterConfig.serviceName.isEmpty
                ? cluster.name : cluster.edsClusterConfig.serviceName) : nil
        }
        endpoints.withLock { $0[resource.value] = .some(name) }
        return name
    }

    func routeNames(ofListener resource: Google_Protobuf_Any) -> [String] {
        if let known = routes.withLock({ $0[resource.value] }) { return known }
        var names: [String] = []
        if let listener = try? Envoy_Config_Listener_V3_Listener(serializedBytes: resource.value) {
            for chain in listener.filterChains {
                for filter in chain.filters where filter.typedConfig.typeURL == TypeURL.connectionManager {
                    let manager = try? Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager(
                        serializedBytes: filter.typedConfig.value)
                    if let manager, case .rds(let rds)? = manager.routeSpecifier { names.append(rds.routeConfigName) }
                }
            }
        }
        routes.withLock { $0[resource.value] = names }
        return names
    }
}
