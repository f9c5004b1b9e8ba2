import NIOCore
import ProxyCore
import Synchronization
import Testing
import XDSAPI
@testable import ProxyUpstream

/// DNS clusters resolved through a table instead of the network.
@Suite struct DNSClusterTests {
    final class TableResolver: DNSResolver {
        let table: Mutex<[String: [String]]>
        init(_ table: [String: [String]]) { self.table = Mutex(table) }
        func set(_ name: String, _ addresses: [String]) { table.withLock { $0[name] = addresses } }
        func resolve(_ name: String, family: DNSLookupFamily) async throws -> [String] {
            guard let addresses = table.withLock({ $0[name] }) else { throw CancellationError() }
            return addresses
        }
    }

    func cluster(_ type: Envoy_Config_Cluster_V3_Cluster.DiscoveryType, _ names: [String],
                 family: Envoy_Config_Cluster_V3_Cluster.DnsLookupFamily = .auto) throws -> Cluster {
        var config = ClusterConfigTests.cluster(type: type, addresses: names)
        config.dnsLookupFamily = family
        return try Cluster(config, stats: StatsStore(), addedViaAPI: false, loops: [],
                           connector: ClusterConfigTests.NoConnector())
    }

    @Test func strictDNSMakesAHostPerAddressAndKeepsSurvivors() async throws {
        let resolver = TableResolver(["backend.local": ["10.0.0.1", "10.0.0.2"]])
        let strict = try cluster(.strictDns, ["backend.local"])
        #expect(strict.hosts.isEmpty, "no host before the first resolution")
        await strict.refreshDNS(using: resolver)
        #expect(strict.hosts.map(\.address) == ["10.0.0.1", "10.0.0.2"])
        #expect(strict.hosts.allSatisfy { $0.hostname == "backend.local" })
        let survivor = strict.hosts[1]
        resolver.set("backend.local", ["10.0.0.2", "10.0.0.3"])
        await strict.refreshDNS(using: resolver)
        #expect(strict.hosts.map(\.address) == ["10.0.0.2", "10.0.0.3"])
        #expect(strict.hosts[0] === survivor, "a host that stays keeps its stats and connections")
        #expect(strict.stats.membershipChange.value == 2)
    }

    @Test func failedResolutionKeepsThePreviousHosts() async throws {
        let resolver = TableResolver(["a.local": ["10.0.0.9"]])
        let strict = try cluster(.strictDns, ["a.local"])
        await strict.refreshDNS(using: resolver)
        resolver.table.withLock { $0 = [:] }
        await strict.refreshDNS(using: resolver)
        #expect(strict.hosts.map(\.address) == ["10.0.0.9"])
        #expect(strict.stats.updateFailure.value == 1)
    }

    @Test func logicalDNSUsesTheFirstAddressOfTheFamily() async throws {
        let resolver = TableResolver(["svc.local": ["::1", "10.0.0.5", "10.0.0.6"]])
        let logical = try cluster(.logicalDns, ["svc.local"], family: .v4Only)
        await logical.refreshDNS(using: resolver)
        #expect(logical.hosts.map(\.address) == ["10.0.0.5"])
        #expect(logical.hosts.first?.hostname == "svc.local")
    }

    @Test func familiesSelectAsEnvoy() {
        let both = ["::1", "10.0.0.1"]
        #expect(DNSLookupFamily.auto.select(both) == ["::1"])
        #expect(DNSLookupFamily.v4Preferred.select(both) == ["10.0.0.1"])
        #expect(DNSLookupFamily.v4Preferred.select(["::1"]) == ["::1"])
        #expect(DNSLookupFamily.all.select(both) == both)
    }
}
