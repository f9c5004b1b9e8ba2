import ControlPlane
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import SwiftProtobuf
import Synchronization
import Testing
import XDSAPI
@testable import ProxyXDS

/// meshproxy's ADS client against meshd's real ADS server, over grpc-swift's in-process transport.
@Suite struct ADSClientInProcessTests {
    /// Records what it is handed; rejects clusters whose name starts with "bad"; subscribes to the
    /// endpoints of every cluster it accepts, as the proxy's config manager does.
    final class RecordingSubscriber: XDSSubscriber {
        let applied = Mutex<[String: [String]]>([:])
        let connected = Atomic<Bool>(false)

        func apply(typeURL: String, resources: [Google_Protobuf_Any], version: String) async -> XDSApplyResult {
            var names: [String] = []
            var rejected: [String] = []
            for resource in resources {
                if let cluster = try? Envoy_Config_Cluster_V3_Cluster(unpackingAny: resource) {
                    if cluster.name.hasPrefix("bad") { rejected.append(cluster.name) } else { names.append(cluster.name) }
                } else if let assignment = try? Envoy_Config_Endpoint_V3_ClusterLoadAssignment(unpackingAny: resource) {
                    names.append(assignment.clusterName)
                }
            }
            applied.withLock { $0[typeURL] = names }
            var result = XDSApplyResult()
            if typeURL == XDSTypes.cluster { result.subscriptions[XDSTypes.endpoint] = Set(names) }
            if !rejected.isEmpty { result.errorMessage = "Error adding/updating cluster(s) \(rejected.joined(separator: ", "))" }
            return result
        }

        func connectionChanged(_ connected: Bool) { self.connected.store(connected, ordering: .relaxed) }
    }

    static func cluster(_ name: String) throws -> VersionedResource {
        var cluster = Envoy_Config_Cluster_V3_Cluster()
        cluster.name = name
        cluster.type = .eds
        return VersionedResource(typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster", name: name,
                                 version: try ContentHash.version(of: cluster), resource: try Google_Protobuf_Any(message: cluster),
                                 file: "t.yaml", line: 1, scope: .all)
    }

    static func endpoints(_ name: String) throws -> VersionedResource {
        var assignment = Envoy_Config_Endpoint_V3_ClusterLoadAssignment()
        assignment.clusterName = name
        return VersionedResource(typeURL: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment", name: name,
                                 version: try ContentHash.version(of: assignment),
                                 resource: try Google_Protobuf_Any(message: assignment), file: "t.yaml", line: 1, scope: .all)
    }

    /// Polls `condition` every 10 ms for at most `seconds`.
    static func eventually(_ seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    @Test(arguments: [ADSClientMode.stateOfTheWorld, .delta])
    func subscribesAcksAndNacks(mode: ADSClientMode) async throws {
        let cache = SnapshotCache()
        cache.update([try Self.cluster("web"), try Self.endpoints("web"), try Self.endpoints("unused")])
        let registry = SyncRegistry()
        let logger = Logger(label: "test")
        let transport = InProcessTransport()
        let server = GRPCServer(transport: transport.server, services: [
            AggregatedDiscoveryServer(cache: cache, registry: registry, metrics: ControlPlaneMetrics(), logger: logger),
        ])
        var node = Envoy_Config_Core_V3_Node()
        node.id = "proxy-1"
        node.cluster = "demo"
        let subscriber = RecordingSubscriber()
        let client = ADSClient(transport: { transport.client }, node: node, subscriber: subscriber, logger: logger,
                               mode: mode)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask { await client.run() }

            // Clusters arrive; the client then asks for exactly their endpoints, and ACKs both.
            #expect(await Self.eventually { subscriber.applied.withLock { $0[XDSTypes.endpoint] } == ["web"] })
            let connected = subscriber.connected.load(ordering: .relaxed)
            #expect(connected)
            let synced = await Self.eventually {
                let types = registry.all().first?.types ?? [:]
                // CDS, EDS, and LDS (asked for as a wildcard; empty here).
                return Set(types.keys.map(\.shortName)) == ["CDS", "EDS", "LDS"]
                    && types.values.allSatisfy { $0.ackedVersion != nil && $0.ackedVersion == $0.sentVersion }
            }
            #expect(synced)
            #expect(registry.all().first?.node?.id == "proxy-1")

            // A cluster the proxy rejects: the NACK and its message reach the server's books.
            cache.update([try Self.cluster("web"), try Self.cluster("bad-one"), try Self.endpoints("web")])
            #expect(await Self.eventually {
                registry.all().first?.types.first { $0.key.shortName == "CDS" }?.value.nackMessage
                    == "Error adding/updating cluster(s) bad-one"
            })
            // Fixed: the next version is acknowledged and the NACK clears.
            cache.update([try Self.cluster("web"), try Self.cluster("api"), try Self.endpoints("web"), try Self.endpoints("api")])
            #expect(await Self.eventually {
                let cds = registry.all().first?.types.first { $0.key.shortName == "CDS" }?.value
                return cds?.nackMessage == nil && cds?.ackedVersion == cds?.sentVersion
                    && subscriber.applied.withLock { $0[XDSTypes.endpoint].map(Set.init) } == ["web", "api"]
            })
            group.cancelAll()
        }
    }
}

/// The client against a management server that goes away and comes back (another server on the
/// same cache, as a restarted meshd): it reconnects with back-off and resumes where it was.
@Suite struct ADSClientReconnectTests {
    final class TransportSequence: Sendable {
        let transports: [InProcessTransport]
        let next = Atomic<Int>(0)
        init(_ transports: [InProcessTransport]) { self.transports = transports }
        func client() -> InProcessTransport.Client {
            let index = min(next.wrappingAdd(1, ordering: .relaxed).oldValue, transports.count - 1)
            return transports[index].client
        }
    }

    @Test(arguments: [ADSClientMode.stateOfTheWorld, .delta])
    func reconnectsToARestartedServerAndResumes(mode: ADSClientMode) async throws {
        let cache = SnapshotCache()
        cache.update([try ADSClientInProcessTests.cluster("web"), try ADSClientInProcessTests.endpoints("web")])
        let logger = Logger(label: "test")
        let first = InProcessTransport(), second = InProcessTransport()
        let firstRegistry = SyncRegistry(), secondRegistry = SyncRegistry()
        let firstServer = GRPCServer(transport: first.server, services: [
            AggregatedDiscoveryServer(cache: cache, registry: firstRegistry, metrics: ControlPlaneMetrics(), logger: logger),
        ])
        let secondServer = GRPCServer(transport: second.server, services: [
            AggregatedDiscoveryServer(cache: cache, registry: secondRegistry, metrics: ControlPlaneMetrics(), logger: logger),
        ])
        let sequence = TransportSequence([first, second])
        let subscriber = ADSClientInProcessTests.RecordingSubscriber()
        var node = Envoy_Config_Core_V3_Node()
        node.id = "proxy-r"
        let client = ADSClient(transport: { sequence.client() }, node: node, subscriber: subscriber, logger: logger,
                               mode: mode, backOffBase: .milliseconds(10), backOffMax: .milliseconds(50))
        func synced(_ registry: SyncRegistry) -> Bool {
            guard let types = registry.all().first?.types, types.count >= 2 else { return false }
            return types.values.allSatisfy { $0.ackedVersion != nil && $0.ackedVersion == $0.sentVersion }
        }
        let firstTask = Task { try await firstServer.serve() }
        let clientTask = Task { await client.run() }
        defer { clientTask.cancel() }
        #expect(await ADSClientInProcessTests.eventually { synced(firstRegistry) })

        // The server goes away: the proxy keeps what it has and comes back to the next one.
        firstServer.beginGracefulShutdown()
        firstTask.cancel()
        let secondTask = Task { try await secondServer.serve() }
        defer { secondTask.cancel() }
        #expect(await ADSClientInProcessTests.eventually { synced(secondRegistry) })
        #expect(subscriber.applied.withLock { $0[XDSTypes.endpoint] } == ["web"], "nothing was lost on the way")
        // What the proxy had is what it has: later changes still arrive on the new stream.
        cache.update([try ADSClientInProcessTests.cluster("web"), try ADSClientInProcessTests.cluster("api"),
                      try ADSClientInProcessTests.endpoints("web"), try ADSClientInProcessTests.endpoints("api")])
        #expect(await ADSClientInProcessTests.eventually {
            subscriber.applied.withLock { $0[XDSTypes.endpoint].map(Set.init) } == ["web", "api"]
        })
        secondServer.beginGracefulShutdown()
    }
}
