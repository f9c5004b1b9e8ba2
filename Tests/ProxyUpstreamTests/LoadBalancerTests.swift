import NIOEmbedded
import NIOCore
import ProxyCore
import Testing
import XDSAPI
@testable import ProxyUpstream

@Suite struct LoadBalancerTests {
    static func hosts(_ weights: [UInt32]) -> [Host] {
        weights.enumerated().map { Host(address: "10.0.0.\($0.offset + 1)", port: 80, hostname: "", weight: $0.element) }
    }

    @Test func roundRobinCycles() {
        let hosts = Self.hosts([1, 1, 1])
        let lb = LoadBalancer(policy: .roundRobin, hosts: hosts)
        let picked = (0..<6).map { _ in lb.pick()!.address }
        #expect(picked == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.2", "10.0.0.3"])
    }

    @Test func weightsShareTrafficAndInterleave() {
        let lb = LoadBalancer(policy: .roundRobin, hosts: Self.hosts([3, 1]))
        let picked = (0..<8).map { _ in lb.pick()!.address }
        #expect(picked.filter { $0 == "10.0.0.1" }.count == 6)
        #expect(LoadBalancer.interleavedSchedule(weights: [3, 1]) == [0, 0, 1, 0])
        #expect(LoadBalancer.interleavedSchedule(weights: [200, 100]).count == 3, "weights are reduced by their gcd")
    }

    @Test func randomUsesEveryHost() {
        let lb = LoadBalancer(policy: .random, hosts: Self.hosts([1, 1, 1, 1]))
        let picked = Set((0..<400).map { _ in lb.pick()!.address })
        #expect(picked.count == 4)
    }

    @Test(arguments: [LoadBalancer.Policy.roundRobin, .random, .leastRequestDefault])
    func weightedDistributionOverTenThousandPicks(policy: LoadBalancer.Policy) {
        let hosts = Self.hosts([1, 2, 7])
        let lb = LoadBalancer(policy: policy, hosts: hosts)
        var counts = [0, 0, 0]
        for _ in 0..<10_000 {
            let picked = lb.pick()!
            counts[hosts.firstIndex { $0 === picked }!] += 1
        }
        for (count, expected) in zip(counts, [1_000, 2_000, 7_000]) {
            #expect(abs(count - expected) <= 300, "\(counts) for weights 1, 2, 7")
        }
    }

    @Test func emptyClusterPicksNothing() {
        #expect(LoadBalancer(policy: .roundRobin, hosts: []).pick() == nil)
    }

    @Test func retryBudgetIsBounded() {
        let budget = RetryBudget(limit: 2)
        #expect(budget.tryAcquire() && budget.tryAcquire())
        #expect(!budget.tryAcquire())
        budget.release()
        #expect(budget.tryAcquire())
    }
}

@Suite struct ClusterConfigTests {
    struct NoConnector: UpstreamConnector {
        func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                     handler: UpstreamConnectionHandler) -> EventLoopFuture<any Channel> {
            loop.makeFailedFuture(ChannelError.connectTimeout(timeout))
        }

        func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                     initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
            loop.makeFailedFuture(ChannelError.connectTimeout(timeout))
        }
    }

    static func cluster(type: Envoy_Config_Cluster_V3_Cluster.DiscoveryType, addresses: [String]) -> Envoy_Config_Cluster_V3_Cluster {
        var cluster = Envoy_Config_Cluster_V3_Cluster()
        cluster.name = "c"
        cluster.type = type
        var locality = Envoy_Config_Endpoint_V3_LocalityLbEndpoints()
        locality.lbEndpoints = addresses.map { address in
            var endpoint = Envoy_Config_Endpoint_V3_LbEndpoint()
            endpoint.endpoint.address.socketAddress.address = address
            endpoint.endpoint.address.socketAddress.portValue = 80
            return endpoint
        }
        cluster.loadAssignment.endpoints = [locality]
        return cluster
    }

    func build(_ config: Envoy_Config_Cluster_V3_Cluster) throws -> Cluster {
        try Cluster(config, stats: StatsStore(), addedViaAPI: false, loops: [], connector: NoConnector())
    }

    @Test func staticNeedsIPAddresses() {
        let error = #expect(throws: ClusterConfigError.self) {
            try build(Self.cluster(type: .static, addresses: ["backend.local"]))
        }
        #expect(error?.description == "load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: malformed IP address: backend.local")
    }

    @Test func logicalDNSNeedsOneHost() {
        #expect(throws: ClusterConfigError.self) {
            try build(Self.cluster(type: .logicalDns, addresses: ["a.local", "b.local"]))
        }
    }

    @Test func dnsClustersWithIPLiteralsNeedNoLookup() throws {
        let cluster = try build(Self.cluster(type: .strictDns, addresses: ["backend.local", "::1"]))
        #expect(cluster.hosts.map(\.hostname) == ["::1"])
        #expect(cluster.hosts.map(\.addressDescription) == ["[::1]:80"])
        #expect(cluster.dnsEndpoints.map(\.name) == ["backend.local", "::1"])
        #expect(cluster.connectTimeout == .seconds(5))
        #expect(cluster.resources().thresholds.maxRetries == 3)
    }

    @Test func unsupportedLBPolicyIsAnError() {
        var config = Self.cluster(type: .static, addresses: ["10.0.0.1"])
        config.lbPolicy = .clusterProvided
        let error = #expect(throws: ClusterConfigError.self) { try build(config) }
        #expect(error?.fieldPath == "lb_policy")
    }
}

@Suite struct LeastRequestTests {
    @Test func prefersTheLessBusyOfTwoChoices() {
        let hosts = LoadBalancerTests.hosts([1, 1])
        hosts[0].stats.rqActive.store(10, ordering: .relaxed)
        let lb = LoadBalancer(policy: .leastRequestDefault, hosts: hosts)
        let picks = (0..<200).map { _ in lb.pick()!.address }
        // Whenever both hosts are drawn, the idle one wins; only a double draw of the busy one picks it.
        #expect(picks.filter { $0 == "10.0.0.2" }.count > 120)
    }

    @Test func moreChoicesFindTheIdleHostMoreOften() {
        func idlePicks(choices: Int) -> Int {
            let hosts = LoadBalancerTests.hosts([1, 1, 1, 1])
            for host in hosts.dropFirst() { host.stats.rqActive.store(5, ordering: .relaxed) }
            let lb = LoadBalancer(policy: .leastRequest(choiceCount: choices, activeRequestBias: 1), hosts: hosts)
            return (0..<4000).filter { _ in lb.pick()! === hosts[0] }.count
        }
        // The idle host wins unless no choice lands on it: 1 - (3/4)^n of picks.
        #expect(abs(idlePicks(choices: 2) - 1750) < 200)
        #expect(abs(idlePicks(choices: 4) - 2734) < 200)
    }

    @Test func unequalWeightsAreFollowedExactlyWhenIdle() {
        let hosts = LoadBalancerTests.hosts([1, 3])
        let lb = LoadBalancer(policy: .leastRequestDefault, hosts: hosts)
        let heavy = (0..<400).filter { _ in lb.pick()! === hosts[1] }.count
        #expect(heavy == 300)
    }

    @Test func activeRequestsLowerAHostsWeightByTheBias() {
        func heavyPicks(bias: Double) -> Int {
            let hosts = LoadBalancerTests.hosts([1, 3])
            hosts[1].stats.rqActive.store(5, ordering: .relaxed)
            let lb = LoadBalancer(policy: .leastRequest(choiceCount: 2, activeRequestBias: bias), hosts: hosts)
            return (0..<600).filter { _ in lb.pick()! === hosts[1] }.count
        }
        // Weight 3 over 6 active-plus-one is 0.5 against the idle host's 1: a third of the picks.
        #expect(heavyPicks(bias: 1) == 200)
        // A bias of 0 ignores active requests: plain 1:3.
        #expect(heavyPicks(bias: 0) == 450)
    }

    @Test func spreadsEvenlyWhenIdle() {
        let lb = LoadBalancer(policy: .leastRequestDefault, hosts: LoadBalancerTests.hosts([1, 1, 1]))
        #expect(Set((0..<300).map { _ in lb.pick()!.address }).count == 3)
    }
}

@Suite struct ConsistentHashingTests {
    static func hosts(_ count: Int) -> [Host] {
        (1...count).map { Host(address: "10.0.0.\($0)", port: 80, hostname: "10.0.0.\($0)") }
    }

    @Test(arguments: [LoadBalancer.Policy.ringHash(minimumRingSize: 1024, maximumRingSize: 8_388_608),
                      .maglev(tableSize: 65_537)])
    func sameHashSameHostAndAnEvenSpread(policy: LoadBalancer.Policy) {
        let balancer = LoadBalancer(policy: policy, hosts: Self.hosts(4))
        #expect(balancer.isConsistentHashing)
        for key in 0..<50 {
            let hash = XXHash64.hash("user-\(key)")
            #expect(balancer.pick(hash: hash) === balancer.pick(hash: hash))
        }
        var counts: [String: Int] = [:]
        for key in 0..<4_000 { counts[balancer.pick(hash: XXHash64.hash("k\(key)"))!.address, default: 0] += 1 }
        #expect(counts.count == 4 && counts.values.allSatisfy { $0 > 700 && $0 < 1_300 })
    }

    @Test func removingAHostMovesOnlyItsKeys() {
        let hosts = Self.hosts(4)
        let before = LoadBalancer(policy: .maglev(tableSize: 65_537), hosts: hosts)
        let after = LoadBalancer(policy: .maglev(tableSize: 65_537), hosts: Array(hosts.dropLast()))
        var moved = 0
        for key in 0..<2_000 {
            let hash = XXHash64.hash("k\(key)")
            let old = before.pick(hash: hash)!
            if old !== hosts[3], after.pick(hash: hash)! !== old { moved += 1 }
        }
        #expect(moved < 200, "keys of the remaining hosts mostly stay (\(moved) moved)")
    }

    /// Maglev moves little more than the new host's share. Envoy's ring gives each host ring size ×
    /// weight / total entries, so every old host also gives up a fifth of its entries when a fifth
    /// host comes, and keys on those move too (as they do in Envoy, whose rings these match).
    @Test(arguments: [(LoadBalancer.Policy.ringHash(minimumRingSize: 1024, maximumRingSize: 8_388_608), 0.12),
                      (.maglev(tableSize: 65_537), 0.05)])
    func addingAHostMovesAboutItsShareOfKeys(policy: LoadBalancer.Policy, epsilon: Double) {
        let hosts = Self.hosts(5)
        let before = LoadBalancer(policy: policy, hosts: Array(hosts.prefix(4)))
        let after = LoadBalancer(policy: policy, hosts: hosts)
        let keys = 10_000
        let moved = (0..<keys).filter { key in
            let hash = XXHash64.hash("key-\(key)")
            return before.pick(hash: hash)! !== after.pick(hash: hash)!
        }.count
        // The new host takes about 1/5 of the keys; few others move.
        #expect(Double(moved) / Double(keys) <= 1.0 / 5 + epsilon, "\(moved) of \(keys) keys moved")
    }

    @Test func weightsShapeTheRing() {
        let heavy = Host(address: "10.0.0.1", port: 80, hostname: "a", weight: 3)
        let light = Host(address: "10.0.0.2", port: 80, hostname: "b", weight: 1)
        let balancer = LoadBalancer(policy: .ringHash(minimumRingSize: 1024, maximumRingSize: 8_388_608), hosts: [heavy, light])
        let heavyShare = (0..<4_000).filter { balancer.pick(hash: XXHash64.hash("w\($0)")) === heavy }.count
        #expect(heavyShare > 2_600 && heavyShare < 3_400)
    }
}
