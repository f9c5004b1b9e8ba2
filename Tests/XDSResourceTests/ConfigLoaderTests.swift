import SwiftProtobuf
import Testing
import Yams
import XDSAPI
@testable import XDSResource

@Suite struct ConfigLoaderTests {
    let loader = ConfigLoader()

    static let seedYAML = """
    admin:
      address:
        socket_address: { address: 127.0.0.1, port_value: 15000 }
    static_resources:
      listeners:
      - name: listener_0
        address:
          socket_address: { address: 0.0.0.0, port_value: 15001 }
        filter_chains:
        - filters:
          - name: envoy.filters.network.http_connection_manager
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
              stat_prefix: ingress_http
              http_filters:
              - name: envoy.filters.http.router
              route_config:
                name: local_route
                virtual_hosts:
                - name: local_service
                  domains: ["*"]
                  routes:
                  - match: { prefix: "/" }
                    route:
                      auto_host_rewrite: true
                      cluster: httpbin_service
                      retry_policy: { retry_on: "5xx", num_retries: 3 }
      clusters:
      - name: httpbin_service
        connect_timeout: 5s
        type: LOGICAL_DNS
        dns_lookup_family: V4_ONLY
        lb_policy: ROUND_ROBIN
        load_assignment:
          cluster_name: httpbin
          endpoints:
          - lb_endpoints:
            - endpoint:
                address:
                  socket_address: { address: 127.0.0.1, port_value: 8000 }
    """

    @Test func decodesTheSeedBootstrap() throws {
        let bootstrap = try loader.decode(Envoy_Config_Bootstrap_V3_Bootstrap.self, yaml: Self.seedYAML, file: "seed.yaml")
        #expect(bootstrap.admin.address.socketAddress.portValue == 15000)
        let cluster = try #require(bootstrap.staticResources.clusters.first)
        #expect(cluster.type == .logicalDns)
        #expect(cluster.connectTimeout.seconds == 5)
        #expect(cluster.dnsLookupFamily == .v4Only)
        let filter = try #require(bootstrap.staticResources.listeners.first?.filterChains.first?.filters.first)
        let hcm = try Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager(unpackingAny: filter.typedConfig)
        #expect(hcm.statPrefix == "ingress_http")
        #expect(hcm.httpFilters.first?.name == "envoy.filters.http.router")
        #expect(hcm.httpFilters.first?.configType == nil)
        let route = try #require(hcm.routeConfig.virtualHosts.first?.routes.first)
        #expect(route.route.retryPolicy.numRetries.value == 3)
        #expect(route.route.autoHostRewrite.value == true)
    }

    @Test func jsonIsAcceptedToo() throws {
        let json = #"{"admin": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 9901}}}}"#
        let bootstrap = try loader.decode(Envoy_Config_Bootstrap_V3_Bootstrap.self, yaml: json, file: "b.json")
        #expect(bootstrap.admin.address.socketAddress.portValue == 9901)
    }

    @Test(arguments: [
        ("lb_policy: ROUND_ROBIN", "lb_policy: ROUND_ROBIM",
         #"seed.yaml:33: static_resources.clusters[0].lb_policy: unknown enum value "ROUND_ROBIM" for envoy.config.cluster.v3.Cluster.LbPolicy"#),
        ("connect_timeout: 5s", "connect_timeout: 5 seconds",
         #"seed.yaml:30: static_resources.clusters[0].connect_timeout: invalid duration "5 seconds" (expected seconds with an "s" suffix, e.g. "0.25s")"#),
        ("dns_lookup_family: V4_ONLY", "dns_lookup_famly: V4_ONLY",
         #"seed.yaml:32: static_resources.clusters[0].dns_lookup_famly: unknown field "dns_lookup_famly" in envoy.config.cluster.v3.Cluster"#),
        ("port_value: 8000", "port_value: eighty",
         #"seed.yaml:40: static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: invalid uint32 value "eighty""#),
        ("HttpConnectionManager\n", "HttpConnectionManagr\n",
         #"seed.yaml:13: static_resources.listeners[0].filter_chains[0].filters[0].typed_config: Didn't find a registered implementation for 'envoy.filters.network.http_connection_manager' with type URL: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManagr'"#),
    ])
    func reportsFileLineAndFieldPath(good: String, bad: String, expected: String) throws {
        let yaml = Self.seedYAML.replacingOccurrences(of: good, with: bad)
        #expect(yaml != Self.seedYAML)
        let error = #expect(throws: ConfigError.self) {
            try loader.decode(Envoy_Config_Bootstrap_V3_Bootstrap.self, yaml: yaml, file: "seed.yaml")
        }
        #expect(error?.description == expected)
    }

    @Test func yaml11BooleansStayStringsInStringFields() throws {
        let yaml = "stat_prefix: on\nhttp_filters: [{name: yes}]"
        let hcm = try loader.decode(Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager.self,
                                    yaml: yaml, file: "h.yaml")
        #expect(hcm.statPrefix == "on")
        #expect(hcm.httpFilters.first?.name == "yes")
    }

    @Test func malformedYAMLNamesTheLine() {
        let error = #expect(throws: ConfigError.self) {
            try loader.decode(Envoy_Config_Bootstrap_V3_Bootstrap.self, yaml: "admin:\n  address: [unclosed\n", file: "x.yaml")
        }
        #expect(error?.file == "x.yaml")
        #expect(error?.line != nil)
        #expect(error?.reason.hasPrefix("invalid YAML") == true)
    }

    @Test func oneofConflictIsAnError() {
        let yaml = "match: { prefix: /, path: /x }\nroute: { cluster: c }"
        let error = #expect(throws: ConfigError.self) {
            try loader.decode(Envoy_Config_Route_V3_Route.self, yaml: yaml, file: "r.yaml")
        }
        #expect(error?.fieldPath == "match.path")
    }

    @Test func decodesAnyResourceByType() throws {
        let yaml = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: web\nconnect_timeout: 0.25s"
        let node = try #require(try Yams.compose(yaml: yaml))
        let message = try loader.decodeAny(node: node, file: "c.yaml")
        let cluster = try #require(message as? Envoy_Config_Cluster_V3_Cluster)
        #expect(cluster.name == "web")
        #expect(cluster.connectTimeout.nanos == 250_000_000)
    }

    // MARK: the fast path

    @Test func goodFilesTakeTheFastPath() throws {
        let node = try #require(try Yams.compose(yaml: Self.seedYAML))
        let direct = try #require(loader.decodedDirectly(Envoy_Config_Bootstrap_V3_Bootstrap.self, node: node))
        var checked = loader
        checked.walksOnly = true
        let walked = try checked.decode(Envoy_Config_Bootstrap_V3_Bootstrap.self, node: node, file: "seed.yaml")
        #expect(try Self.bytes(direct) == Self.bytes(walked))
    }

    /// Inputs swift-protobuf's JSON decoder and the checked walk might read differently: each must come out of
    /// `decode` exactly as out of the checked walk alone (the same message, or the same error).
    @Test(arguments: [
        "lb_policy: 99", "lb_policy: 1", "lb_policy: LEAST_REQUEST", "lb_policy: round_robin",
        "per_connection_buffer_limit_bytes: 80.0", "per_connection_buffer_limit_bytes: 1e2",
        "per_connection_buffer_limit_bytes: \"80\"", "per_connection_buffer_limit_bytes: -1",
        "per_connection_buffer_limit_bytes: 00012", "per_connection_buffer_limit_bytes: 0x10",
        "alt_stat_name: 80", "alt_stat_name: on", "alt_stat_name: 2024-01-01", "alt_stat_name: ~",
        "respect_dns_ttl: yes", "respect_dns_ttl: True", "respect_dns_ttl: \"true\"",
        "connectTimeout: 6s", "dns_refresh_rate: 5m", "dns_refresh_rate: .5s", "dns_refresh_rate: 1.s",
        "metadata: {filter_metadata: {x: {a: yes, b: null, c: 1.5, d: \"1\", e: .5, f: [1, x, ~], g_h: 1, gH: 2}}}",
        "outlier_detection: {consecutive_5xx: 3.5}", "lb_subset_config: {fallback_policy: 9}",
        "dns_lookup_family: [V4_ONLY]", "name: &n other\nalt_stat_name: *n",
        "typed_extension_protocol_options: {envoy.extensions.upstreams.http.v3.HttpProtocolOptions: "
            + "{\"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions, "
            + "explicit_http_config: {http2_protocol_options: {}}}}",
        "typed_extension_protocol_options: {x: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router, "
            + "suppress_envoy_headers: maybe}}",
        "typed_extension_protocol_options: {x: {\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener}}",
    ])
    func decodesAsTheCheckedWalkDoes(line: String) throws {
        let yaml = "name: c\nconnect_timeout: 5s\n" + line
        var checked = ConfigLoader(registry: Self.clusterRegistry)
        checked.walksOnly = true
        let walked = Result { try checked.decode(Envoy_Config_Cluster_V3_Cluster.self, yaml: yaml, file: "c.yaml") }
        let decoded = Result {
            try ConfigLoader(registry: Self.clusterRegistry).decode(Envoy_Config_Cluster_V3_Cluster.self, yaml: yaml, file: "c.yaml")
        }
        switch (walked, decoded) {
        case (.success(let a), .success(let b)):
            #expect(try Self.bytes(a) == Self.bytes(b))
        case (.failure(let a), .failure(let b)):
            #expect("\(a)" == "\(b)")
        default:
            Issue.record("the checked walk gave \(walked), decode gave \(decoded)")
        }
    }

    /// Listener is registered process-wide by other registries; this one leaves it out.
    static let clusterRegistry = AnyTypeRegistry([
        Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions.self, Envoy_Extensions_Filters_Http_Router_V3_Router.self,
    ])

    static func bytes(_ message: some Message) throws -> [UInt8] {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        return try message.serializedBytes(options: options)
    }

    @Test(arguments: ["5s", "0.25s", "-1.5s", "0s"]) func acceptsDurations(_ text: String) {
        #expect(ProtoJSONTranscoder.isDuration(text))
    }

    @Test(arguments: ["5", "s", "1.s", "5m", "1e3s"]) func rejectsDurations(_ text: String) {
        #expect(!ProtoJSONTranscoder.isDuration(text))
    }
}
