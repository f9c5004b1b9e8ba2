import SwiftProtobuf
import Testing
import XDSAPI
@testable import meshd_load

/// The simulated proxy answers as Envoy does: an ACK for every response, and EDS and RDS
/// subscriptions for what clusters and listeners name.
@Suite struct SimulatedProxyTests {
    let proxy = SimulatedProxy(index: 0, names: ResourceNames())

    static func response(_ type: String, version: String, nonce: String, _ resources: [any Message]) throws -> DiscoveryResponse {
        var response = DiscoveryResponse()
        response.typeURL = type
        response.versionInfo = version
        response.nonce = nonce
        response.resources = try resources.map { try Google_Protobuf_Any(message: $0) }
        return response
    }

    static func edsCluster(_ name: String, serviceName: String = "") -> Envoy_Config_Cluster_V3_Cluster {
        var cluster = Envoy_Config_Cluster_V3_Cluster()
        cluster.name = name
        cluster.type = .eds
        cluster.edsClusterConfig.serviceName = serviceName
        return cluster
    }

    @Test func clustersAreACKedAndTheirEndpointsSubscribed() throws {
        var staticCluster = Envoy_Config_Cluster_V3_Cluster()
        staticCluster.name = "static"
        staticCluster.type = .static
        let clusters = try Self.response(TypeURL.cluster, version: "v1", nonce: "n1",
                                         [Self.edsCluster("web"), Self.edsCluster("api", serviceName: "api-eds"), staticCluster])
        let replies = proxy.handle(clusters, at: .now)
        #expect(replies.count == 2)
        #expect(replies[0].typeURL == TypeURL.cluster && replies[0].versionInfo == "v1" && replies[0].responseNonce == "n1")
        #expect(replies[0].resourceNames.isEmpty)
        #expect(replies[1].typeURL == TypeURL.endpoints && replies[1].resourceNames == ["api-eds", "web"])
        // The same clusters again: an ACK alone.
        let again = proxy.handle(try Self.response(TypeURL.cluster, version: "v2", nonce: "n2",
                                                   [Self.edsCluster("web"), Self.edsCluster("api", serviceName: "api-eds")]),
                                 at: .now)
        #expect(again.count == 1 && again[0].versionInfo == "v2")
        // An EDS ACK names what was subscribed, and the version's arrival is recorded.
        let endpoints = proxy.handle(try Self.response(TypeURL.endpoints, version: "e1", nonce: "n3", []), at: .now)
        #expect(endpoints.count == 1 && endpoints[0].resourceNames == ["api-eds", "web"])
        #expect(proxy.endpointsVersion == "e1")
        #expect(proxy.state.withLock { $0.endpointsSeen["e1"] } != nil)
        #expect(!proxy.ready)
    }

    @Test func listenersLeadToTheirRouteConfigurations() throws {
        var manager = Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager()
        manager.rds.routeConfigName = "local_route"
        var filter = Envoy_Config_Listener_V3_Filter()
        filter.name = "envoy.filters.network.http_connection_manager"
        filter.typedConfig = try Google_Protobuf_Any(message: manager)
        var listener = Envoy_Config_Listener_V3_Listener()
        listener.name = "ingress"
        listener.filterChains = [Envoy_Config_Listener_V3_FilterChain.with { $0.filters = [filter] }]
        let replies = proxy.handle(try Self.response(TypeURL.listener, version: "l1", nonce: "n1", [listener]), at: .now)
        #expect(replies.count == 2)
        #expect(replies[1].typeURL == TypeURL.route && replies[1].resourceNames == ["local_route"])
        for (type, version) in [(TypeURL.cluster, "c1"), (TypeURL.endpoints, "e1"), (TypeURL.route, "r1")] {
            _ = proxy.handle(try Self.response(type, version: version, nonce: "x", []), at: .now)
        }
        #expect(proxy.ready)
    }
}
