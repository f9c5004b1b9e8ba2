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

    @Test(arguments: ["5s", "0.25s", "-1.5s", "0s"]) func acceptsDurations(_ text: String) {
        #expect(ProtoJSONTranscoder.isDuration(text))
    }

    @Test(arguments: ["5", "s", "1.s", "5m", "1e3s"]) func rejectsDurations(_ text: String) {
        #expect(!ProtoJSONTranscoder.isDuration(text))
    }
}
