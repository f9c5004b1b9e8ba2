import Foundation
import GRPCCore
import GRPCProtobuf
import Logging
import SwiftProtobuf
import XDSAPI
import XDSResource

/// The ADS gRPC service: streams what the cache holds, state-of-the-world and delta. It decides no
/// content; the per-stream protocol state machines decide what to send and when.
public final class AggregatedDiscoveryServer: Envoy_Service_Discovery_V3_AggregatedDiscoveryService.SimpleServiceProtocol {
    let cache: SnapshotCache
    let registry: SyncRegistry
    let metrics: ControlPlaneMetrics
    let logger: Logger
    /// Told of each proxy when its stream first names its node, with the URI SANs of its client
    /// certificate when the xDS channel is mTLS (meshd's CA issues its certificate then, before the
    /// first response is built).
    let nodeConnected: (@Sendable (Envoy_Config_Core_V3_Node, _ peerURIs: [String]) -> Void)?
    /// Reads the URI SANs of a stream's TLS client certificate from the transport.
    let peerURIs: @Sendable (GRPCCore.ServerContext) -> [String]

    public init(cache: SnapshotCache, registry: SyncRegistry, metrics: ControlPlaneMetrics, logger: Logger,
                nodeConnected: (@Sendable (Envoy_Config_Core_V3_Node, _ peerURIs: [String]) -> Void)? = nil,
                peerURIs: @escaping @Sendable (GRPCCore.ServerContext) -> [String] = { _ in [] }) {
        self.cache = cache
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
        self.nodeConnected = nodeConnected
        self.peerURIs = peerURIs
    }

    /// As the generated registration, with requests decoded without their node's extension list
    /// (`NodeExtensionsFilter`).
    public func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        typealias ADS = Envoy_Service_Discovery_V3_AggregatedDiscoveryService
        Self.register(ADS.Method.StreamAggregatedResources.descriptor, nodeField: 2, on: &router) { request, context in
            try await self.streamAggregatedResources(request: request, context: context)
        }
        Self.register(ADS.Method.DeltaAggregatedResources.descriptor, nodeField: 1, on: &router) { request, context in
            try await self.deltaAggregatedResources(request: request, context: context)
        }
    }

    private static func register<Transport: ServerTransport, Request: SwiftProtobuf.Message, Response: SwiftProtobuf.Message>(
        _ method: MethodDescriptor, nodeField: UInt64, on router: inout RPCRouter<Transport>,
        handler: @escaping @Sendable (StreamingServerRequest<Request>, ServerContext) async throws
            -> StreamingServerResponse<Response>
    ) {
        router.registerHandler(
            forMethod: method,
            deserializer: NodeTrimmingDeserializer<Request>(filter: NodeExtensionsFilter(nodeField: nodeField)),
            serializer: ProtobufSerializer<Response>(),
            handler: handler)
    }

    public func streamAggregatedResources(
        request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DiscoveryRequest, any Error>,
        response: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>,
        context: ServerContext
    ) async throws {
        try await serve(SotWStreamState.self, requests: request, responses: response, peer: peerURIs(context))
    }

    public func deltaAggregatedResources(
        request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, any Error>,
        response: RPCWriter<Envoy_Service_Discovery_V3_DeltaDiscoveryResponse>,
        context: ServerContext
    ) async throws {
        try await serve(DeltaStreamState.self, requests: request, responses: response, peer: peerURIs(context))
    }

    /// One stream of either protocol: the state machine decides what to send, the session sends it.
    private func serve<State: ADSStreamProtocol>(
        _: State.Type, requests: RPCAsyncSequence<State.Request, any Error>, responses: RPCWriter<State.Response>,
        peer: [String]
    ) async throws {
        let session = ADSStreamSession<State>(server: self, responses: responses, peer: peer)
        let id = registry.open(protocolName: State.protocolName) { [weak session] in session?.status }
        defer { registry.close(id) }
        try await session.run(requests: requests)
    }

    /// What a request is answered with; records ACKs and NACKs on the way.
    func respond<State: ADSStreamProtocol>(
        to request: State.Request, state: inout State, refusedSecrets: inout Set<String>
    ) -> [State.Response] {
        let node = state.node ?? State.node(of: request)
        let identity = NodeIdentity(id: node?.id ?? "", cluster: node?.cluster ?? "")
        let type = ResourceType(typeURL: State.typeURL(of: request))
        let ackedBefore = type.flatMap { state.delivery(of: $0)?.ackedVersion }
        let snapshot = cache.snapshot(for: identity)
        if type == .secret {
            // Another proxy's certificate (or a secret no file defines) is never served; say so once.
            let served = snapshot.resources(ofType: TypeURL.secret)
            for name in State.subscribedNames(of: request) where served[name] == nil && refusedSecrets.insert(name).inserted {
                logger.warning("node \(identity.id) (\(identity.cluster)) asked for secret '\(name)', which is not served to it")
            }
        }
        let out = state.handle(request, snapshot: snapshot, now: Date())
        if let type {
            if let message = State.errorMessage(of: request) {
                metrics.nacked(type)
                logger.warning("\(type.shortName) NACK from \(identity.id) (\(identity.cluster)): \(message)")
            } else if let delivery = state.delivery(of: type), delivery.ackedVersion != ackedBefore,
                      let latency = delivery.ackLatency {
                metrics.acked(type, latency: latency)
            }
        }
        return out
    }
}
