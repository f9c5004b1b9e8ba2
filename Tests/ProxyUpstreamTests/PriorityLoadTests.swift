import Testing
@testable import ProxyUpstream

/// Envoy's priority load, against the table in Envoy's docs (two levels, P1 fully healthy).
@Suite struct PriorityLoadTests {
    @Test(arguments: [(100, [100, 0]), (72, [100, 0]), (71, [99, 1]), (50, [70, 30]), (25, [35, 65]), (0, [0, 100])])
    func levelZeroLosesLoadAsItsHostsFail(healthyPercent: Int, expected: [Int]) {
        let load = PriorityLoad.compute(healthy: [healthyPercent, 100], total: [100, 100])
        #expect(load.percent == expected)
    }

    @Test func normalizedHealthScalesLevelsUp() {
        // P0 20 % healthy (28), P1 20 % healthy (28): 56 in all, scaled to 100.
        let load = PriorityLoad.compute(healthy: [2, 2], total: [10, 10])
        #expect(load.percent == [50, 50])
        #expect(load.panic == [true, true], "each level has fewer than half its hosts healthy")
    }

    @Test func totalPanicSpreadsByHostCount() {
        let load = PriorityLoad.compute(healthy: [0, 1], total: [3, 3])
        #expect(load.percent == [50, 50] && load.panic == [true, true])
        #expect(PriorityLoad.compute(healthy: [0, 0], total: [0, 0]).percent == [0, 0])
    }

    @Test func aPointFallsInItsLevel() {
        let load = PriorityLoad(percent: [70, 30], panic: [false, false])
        #expect(load.level(at: 0) == 0 && load.level(at: 69) == 0 && load.level(at: 70) == 1 && load.level(at: 99) == 1)
    }

    @Test func hostsInSeveralPrioritiesGetOneBalancerPerLevel() {
        let hosts = [Host(address: "10.0.0.1", port: 80, hostname: ""), Host(address: "10.0.0.2", port: 80, hostname: "", priority: 2)]
        let balancer = LoadBalancer(policy: .roundRobin, hosts: hosts)
        #expect(balancer.levels.map(\.hosts.count) == [1, 0, 1])
        #expect(LoadBalancer(policy: .roundRobin, hosts: [hosts[0]]).levels.isEmpty)
    }

    @Test func localityWeightingGroupsHostsByLocalityInOrder() {
        let a = Host.Locality(zone: "a"), b = Host.Locality(zone: "b")
        let hosts = [Host(address: "10.0.0.1", port: 80, hostname: "", locality: b, localityWeight: 3),
                     Host(address: "10.0.0.2", port: 80, hostname: "", locality: a, localityWeight: 1),
                     Host(address: "10.0.0.3", port: 80, hostname: "", locality: b, localityWeight: 3)]
        let balancer = LoadBalancer(policy: .roundRobin, hosts: hosts, localityWeighted: true)
        #expect(balancer.localityGroups.map(\.hosts.count) == [2, 1])
        #expect(balancer.localityGroups[0].hosts.allSatisfy { $0.locality == b })
        #expect(LoadBalancer(policy: .roundRobin, hosts: hosts).localityGroups.isEmpty)
    }
}
