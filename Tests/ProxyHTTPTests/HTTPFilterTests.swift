import NIOCore
import NIOHTTP1
import ProxyCore
import ProxyRouting
import Testing
@testable import ProxyHTTP

/// Fault and local rate limit decisions, without a connection.
@Suite struct HTTPFilterTests {
    static func request(_ headers: HTTPHeaders = [:], route: RouteEntry? = nil, random: UInt64 = 0) -> HTTPFilterRequest {
        HTTPFilterRequest(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "/x", headers: headers), path: "/x",
                          route: route, channel: nil, tls: nil, isGRPC: false, random: { random })
    }

    static func fault(_ policy: FaultFilter.Policy) -> FaultFilter {
        FaultFilter(name: "envoy.filters.http.fault", policy: policy, stats: .init(statPrefix: "t", store: StatsStore()))
    }

    @Test func abortsAndDelaysFollowTheirPercentages() {
        var policy = FaultFilter.Policy()
        policy.abort = (.http(503), 50, 100)
        policy.delay = (.fixed(.milliseconds(200)), 10, 100)
        let filter = Self.fault(policy)
        let hit = filter.decodeHeaders(Self.request(random: 5))
        #expect(hit.reply?.status == .serviceUnavailable && hit.reply?.body == "fault filter abort")
        #expect(hit.delay == .milliseconds(200) && hit.flags.contains(.delayInjected))
        let miss = filter.decodeHeaders(Self.request(random: 60))
        #expect(miss.reply == nil && miss.delay == nil)
        #expect(filter.stats.abortsInjected.value == 1 && filter.stats.activeFaults.value == 1)
        hit.delayEnded?()
        #expect(filter.stats.activeFaults.value == 0)
    }

    @Test func headerFaultsAndGRPCAborts() {
        var policy = FaultFilter.Policy()
        policy.abort = (.header, 100, 100)
        let filter = Self.fault(policy)
        #expect(filter.decodeHeaders(Self.request()).reply == nil, "no header, no fault")
        #expect(filter.decodeHeaders(Self.request(["x-envoy-fault-abort-request": "429"])).reply?.status == .tooManyRequests)
        let grpc = FaultFilter.abortReply(.grpc(14), headers: [:])
        #expect(grpc?.status == .ok && grpc?.grpcStatus == 14 && grpc?.flags == .faultInjected)
    }

    @Test func aRoutesConfigReplacesTheFilters() {
        var listenerPolicy = FaultFilter.Policy()
        listenerPolicy.abort = (.http(500), 100, 100)
        var routePolicy = FaultFilter.Policy()
        routePolicy.abort = (.http(418), 100, 100)
        let route = RouteEntry(match: RouteMatch(path: .prefix("/")), action: RouteAction(cluster: "c"),
                               perFilterConfigs: ["envoy.filters.http.fault": routePolicy])
        let decision = Self.fault(listenerPolicy).decodeHeaders(Self.request(route: route))
        #expect(decision.reply?.status.code == 418)
    }

    static func cors() -> (CorsFilter, RouteEntry) {
        let store = StatsStore()
        let filter = CorsFilter(name: "envoy.filters.http.cors",
                                originValid: store.counter("v", StatTags(extractedName: "v")),
                                originInvalid: store.counter("i", StatTags(extractedName: "i")))
        let policy = CorsFilter.Policy(
            origins: [StringMatch(.exact("https://app.example"))], allowMethods: "GET", allowHeaders: "", exposeHeaders: "",
            maxAge: "60", allowCredentials: false, enabled: (100, 100))
        let route = RouteEntry(match: RouteMatch(path: .prefix("/")), action: RouteAction(cluster: "c"),
                               perFilterConfigs: ["envoy.filters.http.cors": policy])
        return (filter, route)
    }

    @Test func corsAnswersAllowedPreflightsAndMarksOtherResponses() {
        let (filter, route) = Self.cors()
        let preflight = HTTPFilterRequest(
            head: HTTPRequestHead(version: .http1_1, method: .OPTIONS, uri: "/",
                                  headers: ["origin": "https://app.example", "access-control-request-method": "GET"]),
            path: "/", route: route, channel: nil, tls: nil, isGRPC: false, random: { 0 })
        let answered = filter.decodeHeaders(preflight)
        #expect(answered.reply?.status == .ok)
        #expect(answered.reply?.headers.map(\.0) == ["access-control-allow-origin", "access-control-allow-methods",
                                                      "access-control-max-age"])
        let actual = filter.decodeHeaders(Self.request(["origin": "https://app.example"], route: route))
        #expect(actual.reply == nil && actual.responseHeaders.map(\.1) == ["https://app.example"])
        let stranger = filter.decodeHeaders(Self.request(["origin": "https://evil.example"], route: route))
        #expect(stranger.reply == nil && stranger.responseHeaders.isEmpty)
        #expect(filter.originValid.value == 2 && filter.originInvalid.value == 1)
        #expect(filter.decodeHeaders(Self.request(["origin": "https://app.example"])).responseHeaders.isEmpty,
                "no policy on the route, nothing to do")
    }

    @Test func headerDelaysClusterConditionsAndTheActiveFaultLimit() {
        var policy = FaultFilter.Policy()
        policy.delay = (.header, 100, 100)
        policy.maxActiveFaults = 1
        let filter = Self.fault(policy)
        let first = filter.decodeHeaders(Self.request(["x-envoy-fault-delay-request": "250"]))
        #expect(first.delay == .milliseconds(250))
        let second = filter.decodeHeaders(Self.request(["x-envoy-fault-delay-request": "250"]))
        #expect(second.delay == nil && filter.stats.faultsOverflow.value == 1, "one fault at a time")
        first.delayEnded?()
        var toOther = FaultFilter.Policy()
        toOther.abort = (.http(503), 100, 100)
        toOther.upstreamCluster = "payments"
        let route = RouteEntry(match: RouteMatch(path: .prefix("/")), action: RouteAction(cluster: "web"))
        #expect(Self.fault(toOther).decodeHeaders(Self.request(route: route)).reply == nil, "another cluster's fault")
        toOther.upstreamCluster = "web"
        #expect(Self.fault(toOther).decodeHeaders(Self.request(route: route)).reply != nil)
    }

    @Test func aLocalRateLimitAnswersWithItsStatusAndGRPCCode() throws {
        var proto = LocalRateLimitProto()
        proto.statPrefix = "t"
        proto.tokenBucket.maxTokens = 1
        proto.tokenBucket.fillInterval.seconds = 3600
        proto.filterEnabled.defaultValue.numerator = 100
        proto.filterEnforced.defaultValue.numerator = 100
        proto.status.code = .serviceUnavailable
        proto.rateLimitedAsResourceExhausted = true
        let limiter = try LocalRateLimitFilter.Limiter(proto, store: StatsStore(), path: "p")
        #expect(limiter.decide(random: { 0 }).reply == nil)
        let refused = limiter.decide(random: { 0 }).reply
        #expect(refused?.status == .serviceUnavailable && refused?.grpcStatus == 8 && refused?.flags == .rateLimited)
        proto.filterEnforced.defaultValue.numerator = 0
        let shadow = try LocalRateLimitFilter.Limiter(proto, store: StatsStore(), path: "p")
        _ = shadow.decide(random: { 0 })
        #expect(shadow.decide(random: { 0 }).reply == nil && shadow.rateLimitedCount.value == 1, "counted, not enforced")
    }
}
