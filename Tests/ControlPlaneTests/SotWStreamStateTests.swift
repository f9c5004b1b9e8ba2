import SwiftProtobuf
import Testing
import XDSAPI
import XDSResource
@testable import ControlPlane

/// Resources built in memory for protocol tests.
enum Fixtures {
    static func cluster(_ name: String, timeoutSeconds: Int64 = 1) -> VersionedResource {
        var cluster = Envoy_Config_Cluster_V3_Cluster()
        cluster.name = name
        cluster.connectTimeout = Google_Protobuf_Duration(seconds: timeoutSeconds)
        return resource(cluster, name: name, type: .cluster)
    }

    static func endpoints(_ cluster: String, port: UInt32 = 8000) -> VersionedResource {
        var assignment = Envoy_Config_Endpoint_V3_ClusterLoadAssignment()
        assignment.clusterName = cluster
        var endpoint = Envoy_Config_Endpoint_V3_LbEndpoint()
        endpoint.endpoint.address.socketAddress.address = "127.0.0.1"
        endpoint.endpoint.address.socketAddress.portValue = port
        var locality = Envoy_Config_Endpoint_V3_LocalityLbEndpoints()
        locality.lbEndpoints = [endpoint]
        assignment.endpoints = [locality]
        return resource(assignment, name: cluster, type: .endpoint)
    }

    static func route(_ name: String, cluster: String) -> VersionedResource {
        var route = Envoy_Config_Route_V3_RouteConfiguration()
        route.name = name
        var host = Envoy_Config_Route_V3_VirtualHost()
        host.name = "all"
        host.domains = ["*"]
        var entry = Envoy_Config_Route_V3_Route()
        entry.match.prefix = "/"
        entry.route.cluster = cluster
        host.routes = [entry]
        route.virtualHosts = [host]
        return resource(route, name: name, type: .route)
    }

    static func resource(_ message: any Message, name: String, type: ResourceType, scope: NodeScope = .all)
        -> VersionedResource
    {
        VersionedResource(typeURL: type.typeURL, name: name, version: try! ContentHash.version(of: message),
                          resource: try! Google_Protobuf_Any(message: message), file: "test.yaml", line: 1, scope: scope)
    }

    static func snapshot(_ resources: [VersionedResource]) -> NodeSnapshot {
        let cache = SnapshotCache()
        cache.update(resources)
        return cache.snapshot(for: NodeIdentity(id: "n", cluster: "c"))
    }

    static func request(_ type: ResourceType, names: [String] = [], version: String = "", nonce: String = "",
                        error: String? = nil) -> Envoy_Service_Discovery_V3_DiscoveryRequest {
        var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
        request.typeURL = type.typeURL
        request.resourceNames = names
        request.versionInfo = version
        request.responseNonce = nonce
        request.node.id = "n"
        request.node.cluster = "c"
        if let error { request.errorDetail.message = error; request.errorDetail.code = 3 }
        return request
    }
}

@Suite struct SotWStreamStateTests {
    @Test func wildcardClustersAreSentOnFirstRequestAndAckedOnce() {
        let snapshot = Fixtures.snapshot([Fixtures.cluster("a"), Fixtures.cluster("b")])
        var state = SotWStreamState()
        let first = state.handle(Fixtures.request(.cluster), snapshot: snapshot)
        #expect(first.count == 1)
        #expect(first[0].typeURL == TypeURL.cluster)
        #expect(first[0].resources.count == 2)
        #expect(first[0].nonce == "1")
        let ack = state.handle(Fixtures.request(.cluster, version: first[0].versionInfo, nonce: "1"), snapshot: snapshot)
        #expect(ack.isEmpty, "an ACK of the current version needs no answer")
        #expect(state.types[.cluster]?.delivery.ackedVersion == first[0].versionInfo)
        #expect(state.identity == NodeIdentity(id: "n", cluster: "c"))
    }

    @Test func nackIsRecordedAndStaleNoncesIgnored() {
        let snapshot = Fixtures.snapshot([Fixtures.cluster("a")])
        var state = SotWStreamState()
        let first = state.handle(Fixtures.request(.cluster), snapshot: snapshot)
        #expect(state.handle(Fixtures.request(.cluster, nonce: "1", error: "bad cluster"), snapshot: snapshot).isEmpty)
        #expect(state.types[.cluster]?.delivery.nackMessage == "bad cluster")
        #expect(state.types[.cluster]?.delivery.ackedVersion == nil)
        #expect(state.handle(Fixtures.request(.cluster, version: first[0].versionInfo, nonce: "99"), snapshot: snapshot).isEmpty)
        #expect(state.types[.cluster]?.delivery.nackMessage == "bad cluster", "a stale nonce changes nothing")
        _ = state.handle(Fixtures.request(.cluster, version: first[0].versionInfo, nonce: "1"), snapshot: snapshot)
        #expect(state.types[.cluster]?.delivery.nackMessage == nil, "an ACK clears the NACK")
    }

    @Test func namedTypesSendOnlyTheSubscribedResources() {
        let snapshot = Fixtures.snapshot([Fixtures.route("r1", cluster: "a"), Fixtures.route("r2", cluster: "b")])
        var state = SotWStreamState()
        let first = state.handle(Fixtures.request(.route, names: ["r1"]), snapshot: snapshot)
        #expect(first.first?.resources.count == 1)
        let more = state.handle(Fixtures.request(.route, names: ["r1", "r2"], version: first[0].versionInfo, nonce: "1"),
                                snapshot: snapshot)
        #expect(more.first?.resources.count == 2, "a changed subscription is answered at once")
    }

    @Test func unchangedResourcesAreNotResent() {
        var state = SotWStreamState()
        let resources = [Fixtures.cluster("a"), Fixtures.endpoints("a")]
        _ = state.handle(Fixtures.request(.cluster), snapshot: Fixtures.snapshot(resources))
        _ = state.handle(Fixtures.request(.endpoint, names: ["a"]), snapshot: Fixtures.snapshot(resources))
        #expect(state.snapshotChanged(Fixtures.snapshot(resources)).isEmpty)
    }

    @Test func pushesFollowMakeBeforeBreakAndResendEndpoints() {
        var state = SotWStreamState()
        let before = [Fixtures.cluster("a"), Fixtures.endpoints("a"), Fixtures.route("r", cluster: "a")]
        _ = state.handle(Fixtures.request(.route, names: ["r"]), snapshot: Fixtures.snapshot(before))
        _ = state.handle(Fixtures.request(.endpoint, names: ["a"]), snapshot: Fixtures.snapshot(before))
        _ = state.handle(Fixtures.request(.cluster), snapshot: Fixtures.snapshot(before))
        let after = [Fixtures.cluster("a", timeoutSeconds: 2), Fixtures.endpoints("a"), Fixtures.route("r", cluster: "a")]
        let pushes = state.snapshotChanged(Fixtures.snapshot(after))
        #expect(pushes.map(\.typeURL) == [TypeURL.cluster, TypeURL.clusterLoadAssignment],
                "the changed cluster first, then its unchanged endpoints again; the route is unchanged")
        let nonces = pushes.map { Int($0.nonce)! }
        #expect(nonces == nonces.sorted() && Set(nonces).count == nonces.count)
    }
}

@Suite struct DeltaStreamStateTests {
    static func request(_ type: ResourceType, subscribe: [String] = [], unsubscribe: [String] = [],
                        initial: [String: String] = [:], nonce: String = "", error: String? = nil)
        -> Envoy_Service_Discovery_V3_DeltaDiscoveryRequest
    {
        var request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
        request.typeURL = type.typeURL
        request.resourceNamesSubscribe = subscribe
        request.resourceNamesUnsubscribe = unsubscribe
        request.initialResourceVersions = initial
        request.responseNonce = nonce
        request.node.id = "n"
        if let error { request.errorDetail.message = error }
        return request
    }

    @Test func sendsOnlyChangesAndRemovals() {
        let a = Fixtures.cluster("a"), b = Fixtures.cluster("b")
        var state = DeltaStreamState()
        let first = state.handle(Self.request(.cluster), snapshot: Fixtures.snapshot([a, b]))
        #expect(first.first?.resources.map(\.name) == ["a", "b"])
        let changed = state.snapshotChanged(Fixtures.snapshot([Fixtures.cluster("a", timeoutSeconds: 9)]))
        #expect(changed.first?.resources.map(\.name) == ["a"])
        #expect(changed.first?.removedResources == ["b"])
        #expect(state.snapshotChanged(Fixtures.snapshot([Fixtures.cluster("a", timeoutSeconds: 9)])).isEmpty)
    }

    @Test func initialVersionsAvoidResendingOnReconnect() {
        let a = Fixtures.cluster("a"), b = Fixtures.cluster("b")
        var state = DeltaStreamState()
        let first = state.handle(Self.request(.cluster, initial: ["a": a.version, "gone": "x"]),
                                 snapshot: Fixtures.snapshot([a, b]))
        #expect(first.first?.resources.map(\.name) == ["b"])
        #expect(first.first?.removedResources == ["gone"])
    }

    @Test func namedSubscriptionsComeAndGo() {
        let e1 = Fixtures.endpoints("a"), e2 = Fixtures.endpoints("b")
        var state = DeltaStreamState()
        let first = state.handle(Self.request(.endpoint, subscribe: ["a"]), snapshot: Fixtures.snapshot([e1, e2]))
        #expect(first.first?.resources.map(\.name) == ["a"])
        let second = state.handle(Self.request(.endpoint, subscribe: ["b"], unsubscribe: ["a"], nonce: "1"),
                                  snapshot: Fixtures.snapshot([e1, e2]))
        #expect(second.first?.resources.map(\.name) == ["b"])
        #expect(state.types[.endpoint]?.delivery.ackedVersion != nil)
    }

    @Test func nackIsRecorded() {
        var state = DeltaStreamState()
        _ = state.handle(Self.request(.cluster), snapshot: Fixtures.snapshot([Fixtures.cluster("a")]))
        _ = state.handle(Self.request(.cluster, nonce: "1", error: "no"), snapshot: Fixtures.snapshot([Fixtures.cluster("a")]))
        #expect(state.types[.cluster]?.delivery.nackMessage == "no")
    }
}

@Suite struct SotWResumeTests {
    @Test func aProxyThatHasTheContentGetsNoRepush() {
        let snapshot = Fixtures.snapshot([Fixtures.cluster("a")])
        var first = SotWStreamState()
        let sent = first.handle(Fixtures.request(.cluster), snapshot: snapshot)
        var restarted = SotWStreamState()
        let resumed = restarted.handle(Fixtures.request(.cluster, version: sent[0].versionInfo), snapshot: snapshot)
        #expect(resumed.isEmpty)
        #expect(restarted.types[.cluster]?.delivery.ackedVersion == sent[0].versionInfo)
        let stale = SotWStreamState()
        var other = stale
        #expect(other.handle(Fixtures.request(.cluster, version: "0000000000000000"), snapshot: snapshot).count == 1)
        let changed = restarted.snapshotChanged(Fixtures.snapshot([Fixtures.cluster("a", timeoutSeconds: 5)]))
        #expect(changed.count == 1, "later changes still flow")
    }
}
