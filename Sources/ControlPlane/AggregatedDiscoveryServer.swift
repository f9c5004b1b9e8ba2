import Foundation
import GRPCCore
import Logging
import Synchronization
import XDSAPI

/// The ADS gRPC service: streams what the cache holds, state-of-the-world and delta. It decides no
/// content; the per-stream protocol state machines decide what to send and when.
public final class AggregatedDiscoveryServer: Envoy_Service_Discovery_V3_AggregatedDiscoveryService.SimpleServiceProtocol {
    let cache: SnapshotCache
    let registry: SyncRegistry
    let metrics: ControlPlaneMetrics
    let logger: Logger

    public init(cache: SnapshotCache, registry: SyncRegistry, metrics: ControlPlaneMetrics, logger: Logger) {
        self.cache = cache
        self.registry = registry
        self.metrics = metrics
        self.logger = logger
    }

    private enum Event<Request: Sendable>: Sendable {
        case request(Request)
        case snapshotChanged
    }

    /// Set while a snapshot change waits to be handled, so a stream that cannot keep up queues at
    /// most one (the latest snapshot wins).
    private final class PendingFlag: Sendable {
        let value = Atomic<Bool>(false)
    }

    /// Runs one stream: requests and snapshot changes are merged into one sequence and handled in order.
    private func run<Request: Sendable>(
        requests: RPCAsyncSequence<Request, any Error>,
        handle: @escaping (Event<Request>) async throws -> Void
    ) async throws {
        let (events, continuation) = AsyncStream<Event<Request>>.makeStream()
        let pending = PendingFlag()
        let updates = cache.updates()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                do {
                    for try await request in requests { continuation.yield(.request(request)) }
                } catch {
                    // The proxy went away; the stream ends.
                }
            }
            group.addTask {
                for await _ in updates where !pending.value.exchange(true, ordering: .acquiringAndReleasing) {
                    continuation.yield(.snapshotChanged)
                }
            }
            for await event in events {
                if case .snapshotChanged = event { pending.value.store(false, ordering: .releasing) }
                try await handle(event)
            }
            group.cancelAll()
        }
    }

    public func streamAggregatedResources(
        request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DiscoveryRequest, any Error>,
        response: RPCWriter<Envoy_Service_Discovery_V3_DiscoveryResponse>,
        context: ServerContext
    ) async throws {
        let id = registry.open(protocolName: "SotW")
        defer { registry.close(id) }
        var state = SotWStreamState()
        try await run(requests: request) { [cache, registry, metrics, logger] event in
            let responses: [Envoy_Service_Discovery_V3_DiscoveryResponse]
            switch event {
            case .request(let discoveryRequest):
                let node = state.node ?? (discoveryRequest.hasNode ? discoveryRequest.node : nil)
                let identity = NodeIdentity(id: node?.id ?? "", cluster: node?.cluster ?? "")
                let before = state.types[ResourceType(typeURL: discoveryRequest.typeURL) ?? .cluster]?.ackedVersion
                responses = state.handle(discoveryRequest, snapshot: cache.snapshot(for: identity))
                Self.account(discoveryRequest.typeURL, hasError: discoveryRequest.hasErrorDetail,
                             message: discoveryRequest.errorDetail.message,
                             acked: state.types[ResourceType(typeURL: discoveryRequest.typeURL) ?? .cluster]?.ackedVersion,
                             before: before, latency: state.types[ResourceType(typeURL: discoveryRequest.typeURL) ?? .cluster]?.ackLatency,
                             node: identity, metrics: metrics, logger: logger)
            case .snapshotChanged:
                responses = state.snapshotChanged(cache.snapshot(for: state.identity))
            }
            for discoveryResponse in responses {
                try await response.write(discoveryResponse)
                if let type = ResourceType(typeURL: discoveryResponse.typeURL) { metrics.pushed(type) }
            }
            registry.update(id, node: state.node, types: state.syncStatus)
        }
    }

    public func deltaAggregatedResources(
        request: RPCAsyncSequence<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, any Error>,
        response: RPCWriter<Envoy_Service_Discovery_V3_DeltaDiscoveryResponse>,
        context: ServerContext
    ) async throws {
        let id = registry.open(protocolName: "Delta")
        defer { registry.close(id) }
        var state = DeltaStreamState()
        try await run(requests: request) { [cache, registry, metrics, logger] event in
            let responses: [Envoy_Service_Discovery_V3_DeltaDiscoveryResponse]
            switch event {
            case .request(let deltaRequest):
                let node = state.node ?? (deltaRequest.hasNode ? deltaRequest.node : nil)
                let identity = NodeIdentity(id: node?.id ?? "", cluster: node?.cluster ?? "")
                let type = ResourceType(typeURL: deltaRequest.typeURL) ?? .cluster
                let before = state.types[type]?.ackedVersion
                responses = state.handle(deltaRequest, snapshot: cache.snapshot(for: identity))
                Self.account(deltaRequest.typeURL, hasError: deltaRequest.hasErrorDetail,
                             message: deltaRequest.errorDetail.message, acked: state.types[type]?.ackedVersion,
                             before: before, latency: state.types[type]?.ackLatency, node: identity,
                             metrics: metrics, logger: logger)
            case .snapshotChanged:
                responses = state.snapshotChanged(cache.snapshot(for: state.identity))
            }
            for deltaResponse in responses {
                try await response.write(deltaResponse)
                if let type = ResourceType(typeURL: deltaResponse.typeURL) { metrics.pushed(type) }
            }
            registry.update(id, node: state.node, types: state.syncStatus)
        }
    }

    private static func account(_ typeURL: String, hasError: Bool, message: String, acked: String?, before: String?,
                                latency: Double?, node: NodeIdentity, metrics: ControlPlaneMetrics, logger: Logger) {
        guard let type = ResourceType(typeURL: typeURL) else { return }
        if hasError {
            metrics.nacked(type)
            logger.warning("\(type.shortName) NACK from \(node.id) (\(node.cluster)): \(message)")
        } else if let acked, acked != before, let latency {
            metrics.acked(latency: latency)
        }
    }
}
