import Testing
@testable import ProxyUpstream

@Suite struct ZoneRoutingTests {
    func hosts(_ zone: String, _ count: Int) -> [Host] {
        (0..<count).map { Host(address: "10.0.0.\($0)", port: 80, hostname: "", locality: Host.Locality(zone: zone)) }
    }

    @Test func theLocalZoneKeepsWhatItsShareOfUpstreamHostsAllows() throws {
        let routing = try ZoneRouting.compute(
            upstreamHealthy: [hosts("a", 1), hosts("b", 5)], hasLocal: true,
            localCounts: [Host.Locality(zone: "a"): 1, Host.Locality(zone: "b"): 1],
            localLocality: Host.Locality(zone: "a"), minClusterSize: 6).get()
        // a: 1666 of 10000 upstream against 5000 local: a third stays; b has 8333 - 5000 spare.
        #expect(routing.mode == .residual(localShare: 3332, residual: [0, 3333]))
    }

    @Test func enoughLocalHostsRouteDirectly() throws {
        let routing = try ZoneRouting.compute(
            upstreamHealthy: [hosts("a", 3), hosts("b", 3)], hasLocal: true,
            localCounts: [Host.Locality(zone: "a"): 1, Host.Locality(zone: "b"): 1],
            localLocality: Host.Locality(zone: "a"), minClusterSize: 6).get()
        #expect(routing.mode == .direct)
    }

    @Test func refusalsFollowEnvoysPreconditions() {
        let local = [Host.Locality(zone: "a"): 1, Host.Locality(zone: "b"): 1]
        #expect(ZoneRouting.compute(upstreamHealthy: [hosts("a", 2), hosts("b", 2)], hasLocal: true, localCounts: local,
                                    localLocality: Host.Locality(zone: "a"), minClusterSize: 6) == .failure(.clusterTooSmall))
        #expect(ZoneRouting.compute(upstreamHealthy: [hosts("a", 3), hosts("b", 3)], hasLocal: true, localCounts: local,
                                    localLocality: Host.Locality(zone: "c"), minClusterSize: 6) == .failure(.localClusterNotOK))
        #expect(ZoneRouting.compute(upstreamHealthy: [hosts("a", 6)], hasLocal: true, localCounts: local,
                                    localLocality: Host.Locality(zone: "a"), minClusterSize: 6) == .failure(.tooFewLocalities))
    }
}
