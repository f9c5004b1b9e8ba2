import ProxyCore
import Testing
import XDSAPI
@testable import ProxyUpstream

@Suite struct CircuitBreakerTests {
    static func cluster(thresholds: [(Envoy_Config_Core_V3_RoutingPriority, maxRequests: UInt32)]) throws -> Cluster {
        var config = ClusterConfigTests.cluster(type: .static, addresses: ["127.0.0.1"])
        config.circuitBreakers.thresholds = thresholds.map { priority, maxRequests in
            var threshold = Envoy_Config_Cluster_V3_CircuitBreakers.Thresholds()
            threshold.priority = priority
            threshold.maxRequests.value = maxRequests
            return threshold
        }
        return try Cluster(config, stats: StatsStore(), addedViaAPI: false, loops: [],
                           connector: ClusterConfigTests.NoConnector())
    }

    @Test func prioritiesCountApart() throws {
        let cluster = try Self.cluster(thresholds: [(.high, maxRequests: 2), (.default, maxRequests: 1)])
        let normal = cluster.resources(.default), high = cluster.resources(.high)
        #expect(normal.tryAcquireRequest())
        #expect(!normal.tryAcquireRequest())
        #expect(cluster.stats.circuitBreakers[0].rqOpen.value == 1)
        #expect(high.tryAcquireRequest() && high.tryAcquireRequest())
        #expect(!high.tryAcquireRequest())
        #expect(cluster.stats.circuitBreakers[1].rqOpen.value == 1)
        high.releaseRequest()
        #expect(cluster.stats.circuitBreakers[1].rqOpen.value == 0)
        #expect(cluster.stats.circuitBreakers[0].rqOpen.value == 1)
        #expect(high.activeRequests == 1 && normal.activeRequests == 1)
    }

    @Test func unsetPriorityKeepsEnvoysDefaults() throws {
        let cluster = try Self.cluster(thresholds: [(.default, maxRequests: 7)])
        #expect(cluster.resources(.default).thresholds.maxRequests == 7)
        #expect(cluster.resources(.high).thresholds == CircuitBreakerThresholds())
    }

    @Test func pendingRequestsAreBounded() {
        var thresholds = CircuitBreakerThresholds()
        thresholds.maxPendingRequests = 1
        let gauges = ClusterStats(clusterName: "c", store: StatsStore()).circuitBreakers[0]
        let resources = PriorityResources(priority: .default, thresholds: thresholds, gauges: gauges)
        #expect(resources.tryEnterPending())
        #expect(!resources.tryEnterPending())
        #expect(gauges.rqPendingOpen.value == 1)
        resources.leavePending()
        #expect(gauges.rqPendingOpen.value == 0)
    }
}
