import Testing
import XDSAPI
import XDSResource
@testable import ProxyRouting
import ProxyAccessLog
import Foundation

@Suite struct RouteTableTests {
    static func host(_ name: String, _ domains: [String]) -> VirtualHost {
        VirtualHost(name: name, domains: domains, routes: [
            RouteEntry(match: RouteMatch(path: .prefix("/")), action: RouteAction(cluster: name)),
        ])
    }

    let table = RouteTable(name: "t", virtualHosts: [
        host("fallback", ["*"]),
        host("suffix", ["*.example.com"]),
        host("longer-suffix", ["*.api.example.com"]),
        host("prefix", ["api.*"]),
        host("exact", ["www.example.com", "with.port:8080"]),
    ])

    @Test(arguments: [
        ("www.example.com", "exact"),
        ("WWW.Example.com", "exact"),
        ("www.example.com:15001", "exact"),
        ("with.port:8080", "exact"),
        ("x.example.com", "suffix"),
        ("v1.api.example.com", "longer-suffix"),
        ("api.internal", "prefix"),
        ("example.com", "fallback"),
        ("", "fallback"),
    ])
    func picksVirtualHostsAsEnvoy(host: String, expected: String) {
        #expect(table.virtualHost(for: host)?.name == expected)
    }

    @Test func noFallbackMeansNoRoute() {
        let strict = RouteTable(name: "t", virtualHosts: [Self.host("only", ["a.com"])])
        #expect(strict.route(host: "b.com", path: "/", header: { _ in nil }) == nil)
    }

    @Test func matchesPathRules() throws {
        let regex = try CompiledRegex("/users/[0-9]+")
        #expect(RouteMatch(path: .regex(regex)).matches(path: "/users/42", header: { _ in nil }))
        #expect(!RouteMatch(path: .regex(regex)).matches(path: "/users/42/x", header: { _ in nil }), "whole match")
        #expect(RouteMatch(path: .path("/exact")).matches(path: "/exact", header: { _ in nil }))
        #expect(!RouteMatch(path: .path("/exact")).matches(path: "/exact/", header: { _ in nil }))
        #expect(RouteMatch(path: .prefix("/API"), caseSensitive: false).matches(path: "/api/v1", header: { _ in nil }))
        #expect(RouteMatch(path: .separatedPrefix("/api")).matches(path: "/api/x", header: { _ in nil }))
        #expect(!RouteMatch(path: .separatedPrefix("/api")).matches(path: "/apix", header: { _ in nil }))
    }

    @Test func matchesHeaders() {
        let match = RouteMatch(path: .prefix("/"), headers: [
            HeaderMatcher(name: "X-Canary", rule: .exact("1")),
            HeaderMatcher(name: "x-debug", rule: .present(true), invert: true),
        ])
        #expect(match.matches(path: "/", header: { $0 == "x-canary" ? "1" : nil }))
        #expect(!match.matches(path: "/", header: { ["x-canary": "1", "x-debug": "y"][$0] }))
        #expect(!match.matches(path: "/", header: { _ in nil }))
    }

    @Test func prefixRewriteKeepsTheRest() {
        let action = RouteAction(cluster: "c", prefixRewrite: "/v2/")
        #expect(action.rewrittenPath("/v1/users", matched: .prefix("/v1/")) == "/v2/users")
    }

    @Test func compilesFromYAML() throws {
        let yaml = """
        name: r
        virtual_hosts:
        - name: v
          domains: ["*"]
          routes:
          - match: { safe_regex: { regex: "/a.*" } }
            route:
              cluster: c
              timeout: 2.5s
              retry_policy: { retry_on: "gateway-error,retriable-status-codes", retriable_status_codes: [409],
                              num_retries: 2, per_try_timeout: 0.5s }
        """
        let config = try ConfigLoader().decode(Envoy_Config_Route_V3_RouteConfiguration.self, yaml: yaml, file: "r.yaml")
        let table = try RouteTable(config)
        let route = try #require(table.route(host: "x", path: "/abc", header: { _ in nil }))
        #expect(route.action?.timeoutMs == 2500)
        let policy = try #require(route.action?.retryPolicy)
        #expect(policy.retryOn == [.gatewayError, .retriableStatusCodes])
        #expect(policy.numRetries == 2)
        #expect(policy.perTryTimeoutMs == 500)
        #expect(policy.retries(status: 409) && policy.retries(status: 502) && !policy.retries(status: 500))
    }

    @Test func rejectsBadRegexWithItsPath() throws {
        let yaml = "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {safe_regex: {regex: '(['}}, route: {cluster: c}}]}]"
        let config = try ConfigLoader().decode(Envoy_Config_Route_V3_RouteConfiguration.self, yaml: yaml, file: "r.yaml")
        let error = #expect(throws: RouteConfigError.self) { try RouteTable(config) }
        #expect(error?.fieldPath == "virtual_hosts[0].routes[0].match.safe_regex.regex")
    }
}

@Suite struct RetryPolicyTests {
    @Test func fiveXXCoversConnectFailuresAndResets() {
        let policy = RetryPolicy(retryOn: [.fiveXX])
        #expect(policy.retries(status: 500) && policy.retries(status: 503) && !policy.retries(status: 404))
        #expect(policy.retries(failure: .connectFailure) && policy.retries(failure: .reset))
        #expect(policy.retries(failure: .perTryTimeout))
    }

    @Test func connectFailureOnlyCoversConnects() {
        let policy = RetryPolicy(retryOn: [.connectFailure])
        #expect(policy.retries(failure: .connectFailure))
        #expect(!policy.retries(failure: .reset) && !policy.retries(status: 503))
    }

    @Test func retriable4xxIsOnly409() {
        let policy = RetryPolicy(retryOn: [.retriable4xx])
        #expect(policy.retries(status: 409) && !policy.retries(status: 404))
    }

    @Test func parsesRetryOnLists() {
        #expect(RetryPolicy.Conditions(parsing: " 5xx , reset,unknown") == [.fiveXX, .reset])
        #expect(RetryPolicy.Conditions.unknownNames(in: "5xx,bogus") == ["bogus"])
    }
}

@Suite struct RouteFeaturesTests {
    static let yaml = """
    name: r
    request_headers_to_add: [{header: {key: x-config, value: c}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]
    virtual_hosts:
    - name: v
      domains: ["*"]
      request_headers_to_add: [{header: {key: x-vhost, value: v}}]
      response_headers_to_remove: [server-timing]
      routes:
      - match: { prefix: /canary }
        route:
          weighted_clusters:
            clusters:
            - { name: stable, weight: 90 }
            - { name: canary, weight: 10, request_headers_to_add: [{header: {key: x-canary, value: "1"}}] }
      - match: { prefix: /health }
        direct_response: { status: 200, body: { inline_string: "ok" } }
        response_headers_to_add: [{header: {key: cache-control, value: no-store}}]
      - match: { prefix: / }
        route: { cluster: stable }
        request_headers_to_remove: [x-debug]
    """

    func table() throws -> RouteTable {
        try RouteTable(try ConfigLoader().decode(Envoy_Config_Route_V3_RouteConfiguration.self, yaml: Self.yaml, file: "r.yaml"))
    }

    @Test func weightedClustersSplitByWeight() throws {
        let route = try #require(try table().route(host: "x", path: "/canary", header: { _ in nil }))
        let action = try #require(route.action)
        #expect(action.clusterNames == ["stable", "canary"])
        let picks = (0..<100).map { action.pickCluster(random: UInt64($0)).name }
        #expect(picks.filter { $0 == "canary" }.count == 10)
        #expect(action.pickCluster(random: 95).edits?.requestAdd.first?.name == "x-canary")
    }

    @Test func directResponsesCarryStatusAndBody() throws {
        let route = try #require(try table().route(host: "x", path: "/health", header: { _ in nil }))
        guard case .directResponse(let status, let body) = route.kind else {
            Issue.record("not a direct response")
            return
        }
        #expect(status == 200 && body == "ok")
        #expect(route.headerEdits.responseAdd.map(\.name) == ["cache-control"])
        #expect(route.headerEdits.responseRemove == ["server-timing"])
    }

    @Test func headerEditsFlattenMostSpecificFirst() throws {
        let route = try #require(try table().route(host: "x", path: "/other", header: { _ in nil }))
        #expect(route.headerEdits.requestAdd.map(\.name) == ["x-vhost", "x-config"])
        #expect(route.headerEdits.requestRemove == ["x-debug"])
        var headers = [("x-config", "old"), ("x-debug", "1"), ("host", "h")]
        HeaderEdits.apply(remove: route.headerEdits.requestRemove, add: route.headerEdits.requestAdd, to: &headers)
        #expect(headers.map { "\($0.0)=\($0.1)" } == ["x-config=c", "host=h", "x-vhost=v"])
    }

    @Test func formattersRenderPerRequestAndUnknownOnesAreRejected() throws {
        func table(_ value: String) throws -> RouteTable {
            let yaml = "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: c}, "
                + "request_headers_to_add: [{header: {key: x-ip, value: '\(value)'}}]}]}]"
            return try RouteTable(ConfigLoader().decode(Envoy_Config_Route_V3_RouteConfiguration.self, yaml: yaml, file: "r.yaml"))
        }
        let route = try #require(try table("%REQ(X-A)% is 100%%").route(host: "x", path: "/", header: { _ in nil }))
        let addition = try #require(route.headerEdits.requestAdd.first)
        var headers: [(String, String)] = []
        HeaderEdits.apply(remove: [], add: [addition], to: &headers) { $0.render(AccessLogEntry(startTime: .now), missing: "") }
        #expect(headers.first?.1 == " is 100%")
        let error = #expect(throws: RouteConfigError.self) { try table("%NOT_A_THING%") }
        #expect(error?.fieldPath == "virtual_hosts[0].routes[0].request_headers_to_add[0].header.value")
    }
}

@Suite struct RedirectTests {
    @Test(arguments: [
        (Redirect(scheme: "https"), "example.com:8080", "/a?b=1", "https://example.com/a?b=1"),
        (Redirect(host: "new.example"), "example.com", "/a", "http://new.example/a"),
        (Redirect(port: 8443), "example.com:80", "/a", "http://example.com:8443/a"),
        (Redirect(path: "/login", stripQuery: true), "h", "/x?y=z", "http://h/login"),
        (Redirect(prefixRewrite: "/v2/"), "h", "/v1/users?id=3", "http://h/v2/users?id=3"),
    ])
    func buildsTheLocation(redirect: Redirect, host: String, uri: String, expected: String) {
        #expect(redirect.location(requestScheme: "http", requestHost: host, uri: uri, matched: .prefix("/v1/")) == expected)
    }

    @Test func compilesFromYAML() throws {
        let yaml = "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, "
            + "redirect: {https_redirect: true, response_code: PERMANENT_REDIRECT}}]}]"
        let table = try RouteTable(try ConfigLoader().decode(Envoy_Config_Route_V3_RouteConfiguration.self, yaml: yaml, file: "r"))
        guard case .redirect(let redirect)? = table.route(host: "h", path: "/", header: { _ in nil })?.kind else {
            Issue.record("no redirect")
            return
        }
        #expect(redirect == Redirect(scheme: "https", status: 308))
    }
}

@Suite struct RouteMatchConditionTests {
    @Test func queryParametersTakeTheFirstValueUndecoded() {
        let match = RouteMatch(path: .prefix("/"), queryParameters: [
            HeaderMatcher(name: "debug", rule: .present(true), keepNameCase: true),
            HeaderMatcher(name: "v", rule: .exact("2"), keepNameCase: true),
        ])
        #expect(match.matches(path: "/", query: "v=2&debug", header: { _ in nil }))
        #expect(!match.matches(path: "/", query: "v=3&v=2&debug", header: { _ in nil }))
        #expect(!match.matches(path: "/", query: nil, header: { _ in nil }))
        #expect(RouteMatch.parameter("a", in: "b=1&a=x%20y") == "x%20y")
    }

    @Test func rangesIgnoreCaseAndFractions() {
        let range = HeaderMatcher(name: "x-version", rule: .range(10, 20))
        #expect(range.matches("10") && range.matches("19") && !range.matches("20") && !range.matches("ten"))
        let caseless = HeaderMatcher(name: "x-env", rule: .prefix("Prod"), ignoreCase: true)
        #expect(caseless.matches("PRODUCTION") && !caseless.matches("staging"))
        let half = RouteMatch(path: .prefix("/"), fraction: (50, 100))
        #expect(half.matches(path: "/", header: { _ in nil }, random: { 149 }))
        #expect(!half.matches(path: "/", header: { _ in nil }, random: { 150 }))
    }
}

@Suite struct RegexRewriteTests {
    @Test func everyMatchWithBackReferences() throws {
        let regex = try CompiledRegex("([a-z]+)-(\\d+)")
        #expect(regex.replacingAll(in: "/a-1/bb-22/", with: "\\2.\\1") == "/1.a/22.bb/")
        #expect(try CompiledRegex("^/api").replacingAll(in: "/api/v1", with: "") == "/v1")
        #expect(try CompiledRegex("x").replacingAll(in: "/none", with: "y") == "/none")
    }
}

@Suite struct MirrorPolicyTests {
    @Test func shadowHostsKeepThePort() {
        #expect(RouteAction.MirrorPolicy.shadowHost("example.com") == "example.com-shadow")
        #expect(RouteAction.MirrorPolicy.shadowHost("10.0.0.1:8080") == "10.0.0.1-shadow:8080")
        #expect(RouteAction.MirrorPolicy.shadowHost("[::1]:80") == "[::1]-shadow:80")
    }

    @Test func fractionsSample() {
        let quarter = RouteAction.MirrorPolicy(cluster: "c", fraction: (25, 100))
        #expect(quarter.samples(124) && !quarter.samples(125))
        #expect(RouteAction.MirrorPolicy(cluster: "c").samples(99))
    }
}

@Suite struct ConnectRouteTests {
    @Test func connectMatcherTakesOnlyCONNECTAndRouteUpgradeConfigsCompile() throws {
        let yaml = """
        virtual_hosts:
        - name: v
          domains: ["*"]
          routes:
          - match: { connect_matcher: {} }
            route: { cluster: tunnel, upgrade_configs: [{ upgrade_type: CONNECT, connect_config: {} },
                                                       { upgrade_type: websocket, enabled: false }] }
          - match: { prefix: "" }
            route: { cluster: web }
        """
        let table = try RouteTable(try ConfigLoader().decode(Envoy_Config_Route_V3_RouteConfiguration.self, yaml: yaml, file: "r"))
        let connect = try #require(table.route(host: "a:443", path: "a:443", header: { $0 == ":method" ? "CONNECT" : nil }))
        #expect(connect.action?.cluster == "tunnel")
        #expect(connect.action?.terminatesConnect == true)
        #expect(connect.action?.upgradeOverrides == ["connect": true, "websocket": false])
        let get = try #require(table.route(host: "a", path: "/", header: { $0 == ":method" ? "GET" : nil }))
        #expect(get.action?.cluster == "web")
        #expect(get.action?.terminatesConnect == false)
    }

    @Test func connectConfigBelongsToCONNECTOnly() throws {
        let yaml = "virtual_hosts: [{name: v, domains: ['*'], routes: [{match: {prefix: /}, "
            + "route: {cluster: c, upgrade_configs: [{upgrade_type: websocket, connect_config: {}}]}}]}]"
        let config = try ConfigLoader().decode(Envoy_Config_Route_V3_RouteConfiguration.self, yaml: yaml, file: "r")
        let error = #expect(throws: RouteConfigError.self) { try RouteTable(config) }
        #expect(error?.fieldPath == "virtual_hosts[0].routes[0].route.upgrade_configs[0].connect_config")
    }
}

@Suite struct RateLimitedBackOffTests {
    @Test func resetHeadersGiveTheWaitInOrderWithinTheMaximum() {
        let policy = RetryPolicy(retryOn: [.retriableStatusCodes],
                                 resetHeaders: [.init(name: "retry-after", isUnixTimestamp: false),
                                                .init(name: "x-ratelimit-reset", isUnixTimestamp: true)],
                                 resetMaxIntervalMs: 10_000)
        let headers = ["retry-after": "2", "x-ratelimit-reset": "1005"]
        #expect(policy.resetIntervalMs(header: { headers[$0] }, nowSeconds: 1000) == 2000)
        #expect(policy.resetIntervalMs(header: { ["x-ratelimit-reset": "1005"][$0] }, nowSeconds: 1000) == 5000)
        #expect(policy.resetIntervalMs(header: { ["retry-after": "60"][$0] }, nowSeconds: 1000) == nil, "over the maximum")
        #expect(policy.resetIntervalMs(header: { ["retry-after": "soon"][$0] }, nowSeconds: 1000) == nil)
    }

    @Test func aCookieWithATTLIsMadeForTheConnectionWhenMissing() {
        let policies = [RouteAction.HashPolicy(source: .cookie("sticky", ttlSeconds: 30, path: "/app"))]
        var made: [String] = []
        let generated = RouteAction.HashPolicy.connectionCookieValue(remote: "127.0.0.1:5000", local: "127.0.0.1:10000")
        #expect(generated.count == 16 && generated.allSatisfy(\.isHexDigit))
        let first = RouteAction.HashPolicy.hash(policies, header: { _ in nil }, query: nil, sourceIP: { nil },
                                                connectionCookie: { generated }, setCookie: { made.append($0) })
        #expect(made == ["sticky=\"\(generated)\"; Max-Age=30; Path=/app; HttpOnly"])
        // The client sends it back quoted: the same hash, and nothing new to set.
        let again = RouteAction.HashPolicy.hash(policies, header: { $0 == "cookie" ? "a=1; sticky=\"\(generated)\"" : nil },
                                                query: nil, sourceIP: { nil }, connectionCookie: { "other" },
                                                setCookie: { made.append($0) })
        #expect(first != nil && first == again)
        #expect(made.count == 1)
        let session = [RouteAction.HashPolicy(source: .cookie("s", ttlSeconds: 0))]
        _ = RouteAction.HashPolicy.hash(session, header: { _ in nil }, query: nil, sourceIP: { nil },
                                        connectionCookie: { "00ff" }, setCookie: { made.append($0) })
        #expect(made.last == "s=\"00ff\"; HttpOnly", "a zero ttl makes a session cookie")
    }
}
