import NIOCore
import ProxyCore
import XDSAPI
import XDSResource

/// A Cluster message that meshproxy cannot serve.
public typealias ClusterConfigError = FieldError

extension Cluster {
    /// Builds a cluster from its xDS message. Unsupported features are errors, never ignored.
    public convenience init(_ config: Envoy_Config_Cluster_V3_Cluster, stats store: StatsStore, addedViaAPI: Bool,
                            loops: [any EventLoop], connector: any UpstreamConnector, localZone: LocalZone? = nil) throws {
        guard !config.name.isEmpty else { throw ClusterConfigError("name", "a cluster needs a name") }
        let discoveryType: DiscoveryType
        switch config.clusterDiscoveryType {
        case .type(.static), nil: discoveryType = .static
        case .type(.strictDns): discoveryType = .strictDNS
        case .type(.logicalDns): discoveryType = .logicalDNS
        case .type(.eds):
            guard config.edsClusterConfig.hasEdsConfig,
                  case .ads? = config.edsClusterConfig.edsConfig.configSourceSpecifier
            else {
                throw ClusterConfigError("eds_cluster_config.eds_config", "only ADS is supported as the EDS config source")
            }
            discoveryType = .eds
        case .type(let other):
            throw ClusterConfigError("type", "cluster type \(other) is not supported yet")
        case .clusterType(let custom):
            throw ClusterConfigError("cluster_type", "custom cluster type '\(custom.name)' is not supported")
        }
        let policy: LoadBalancer.Policy
        switch config.lbPolicy {
        case .roundRobin: policy = .roundRobin
        case .random: policy = .random
        case .leastRequest:
            let options = config.leastRequestLbConfig
            let choices = options.hasChoiceCount ? Int(options.choiceCount.value) : 2
            guard choices >= 2 else {
                throw ClusterConfigError("least_request_lb_config.choice_count", "must be at least 2")
            }
            let bias = options.hasActiveRequestBias ? options.activeRequestBias.defaultValue : 1
            guard bias >= 0, bias.isFinite else {
                throw ClusterConfigError("least_request_lb_config.active_request_bias", "must be a finite number, 0 or more")
            }
            policy = .leastRequest(choiceCount: choices, activeRequestBias: bias)
        case .ringHash:
            let ringConfig = config.ringHashLbConfig
            let minimum = ringConfig.hasMinimumRingSize ? Int(ringConfig.minimumRingSize.value) : 1024
            let maximum = ringConfig.hasMaximumRingSize ? Int(ringConfig.maximumRingSize.value) : 8_388_608
            guard minimum >= 1, maximum >= minimum, maximum <= 8_388_608 else {
                throw ClusterConfigError("ring_hash_lb_config", "minimum_ring_size must be at least 1 and at most maximum_ring_size (at most 8M)")
            }
            if ringConfig.hashFunction != .xxHash {
                throw ClusterConfigError("ring_hash_lb_config.hash_function", "only XX_HASH is supported")
            }
            policy = .ringHash(minimumRingSize: minimum, maximumRingSize: maximum)
        case .maglev:
            let size = config.maglevLbConfig.hasTableSize ? Int(config.maglevLbConfig.tableSize.value) : 65_537
            guard size >= 2, size <= 5_000_011, (2...Int(Double(size).squareRoot())).allSatisfy({ size % $0 != 0 }) else {
                throw ClusterConfigError("maglev_lb_config.table_size", "table_size must be a prime number of at most 5000011")
            }
            policy = .maglev(tableSize: size)
        default: throw ClusterConfigError("lb_policy", "lb_policy \(config.lbPolicy) is not supported yet")
        }
        if config.hasTransportSocket, !connector.appliesTransportSocket {
            throw ClusterConfigError("transport_socket", "this connector cannot apply a transport socket")
        }
        let http = try Self.httpProtocol(of: config)
        let autoSNI = try Self.autoSNI(of: config)
        let (hosts, dnsEndpoints) = discoveryType == .eds
            ? ([], []) : try Self.hosts(of: config, discoveryType: discoveryType)
        let thresholds = try ResourcePriority.allCases.map { priority in
            try config.circuitBreakers.thresholds.enumerated()
                .first { Self.priority(of: $0.element) == priority }
                .map { try Self.thresholds(of: $0.element, path: "circuit_breakers.thresholds[\($0.offset)]") }
                ?? CircuitBreakerThresholds()
        }
        let timeout = config.hasConnectTimeout ? config.connectTimeout : .init(seconds: 5)
        var localityWeighted = false
        if case .localityWeightedLbConfig? = config.commonLbConfig.localityConfigSpecifier { localityWeighted = true }
        try self.init(name: config.name, config: config, discoveryType: discoveryType,
                  connectTimeout: .nanoseconds(timeout.seconds * 1_000_000_000 + Int64(timeout.nanos)),
                  loadBalancer: LoadBalancer(policy: policy, hosts: hosts, localityWeighted: localityWeighted,
                                             localZone: Self.zoneLocality(cluster: config.name, policy: policy,
                                                                          localityWeighted: localityWeighted,
                                                                          localZone: localZone)),
                  thresholds: thresholds,
                  stats: ClusterStats(clusterName: config.name, store: store), addedViaAPI: addedViaAPI,
                  loops: loops, connector: connector, dnsEndpoints: dnsEndpoints,
                  dnsLookupFamily: Self.lookupFamily(config.dnsLookupFamily),
                  dnsRefreshInterval: config.hasDnsRefreshRate && config.dnsRefreshRate.milliseconds > 0
                      ? .milliseconds(config.dnsRefreshRate.milliseconds) : .seconds(5),
                  upstreamProtocol: http.protocol, http2Options: http.options,
                  maxRequestsPerConnection: http.maxRequestsPerConnection,
                  outlierDetection: config.hasOutlierDetection ? config.outlierDetection : nil, store: store,
                  autoSNI: autoSNI, healthCheck: try Self.healthCheck(of: config), localZone: localZone)
        if config.loadAssignment.policy.hasOverprovisioningFactor {
            overprovisioningFactor.store(Int(config.loadAssignment.policy.overprovisioningFactor.value), ordering: .relaxed)
        }
    }

    /// The proxy's locality when zone-aware routing applies to a cluster: round robin, least request
    /// or random without locality weights, when the bootstrap names a local cluster (and this is not it).
    static func zoneLocality(cluster: String, policy: LoadBalancer.Policy, localityWeighted: Bool,
                             localZone: LocalZone?) -> Host.Locality? {
        guard let localZone, localZone.clusterName != cluster, !localityWeighted else { return nil }
        switch policy {
        case .roundRobin, .leastRequest, .random: return localZone.locality
        case .ringHash, .maglev: return nil
        }
    }

    static let httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

    /// The cluster's one `health_checks` entry (several are not supported yet).
    static func healthCheck(of config: Envoy_Config_Cluster_V3_Cluster) throws -> Envoy_Config_Core_V3_HealthCheck? {
        guard config.healthChecks.count <= 1 else {
            throw ClusterConfigError("health_checks", "only one health check per cluster is supported yet")
        }
        return config.healthChecks.first
    }

    /// `upstream_http_protocol_options` of the cluster's HttpProtocolOptions (`auto_sni`, `auto_san_validation`,
    /// `override_auto_sni_header`); they need upstream TLS.
    package static func autoSNI(of config: Envoy_Config_Cluster_V3_Cluster) throws -> AutoSNI? {
        guard let any = config.typedExtensionProtocolOptions[httpProtocolOptionsKey],
              let options = try? Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions(unpackingAny: any),
              options.hasUpstreamHTTPProtocolOptions else { return nil }
        let upstream = options.upstreamHTTPProtocolOptions
        let path = "typed_extension_protocol_options['\(httpProtocolOptionsKey)'].upstream_http_protocol_options"
        guard upstream.autoSni else {
            if upstream.autoSanValidation || !upstream.overrideAutoSniHeader.isEmpty {
                throw ClusterConfigError(path + ".auto_sni", "auto_san_validation and override_auto_sni_header need auto_sni")
            }
            return nil
        }
        guard config.hasTransportSocket else {
            throw ClusterConfigError(path + ".auto_sni", "auto_sni needs a TLS transport_socket")
        }
        return AutoSNI(overrideHeader: upstream.overrideAutoSniHeader.isEmpty ? nil : upstream.overrideAutoSniHeader.lowercased(),
                       sanValidation: upstream.autoSanValidation)
    }

    /// The upstream protocol from `typed_extension_protocol_options` (or the cluster's older
    /// `http2_protocol_options` and `max_requests_per_connection`).
    package static func httpProtocol(of config: Envoy_Config_Cluster_V3_Cluster) throws
        -> (protocol: UpstreamProtocol, options: HTTP2Options, maxRequestsPerConnection: Int)
    {
        for key in config.typedExtensionProtocolOptions.keys where key != httpProtocolOptionsKey {
            throw ClusterConfigError("typed_extension_protocol_options", "'\(key)' is not supported")
        }
        var maxRequests = config.hasMaxRequestsPerConnection ? Int(config.maxRequestsPerConnection.value) : 0
        guard let any = config.typedExtensionProtocolOptions[httpProtocolOptionsKey] else {
            if config.hasHTTP2ProtocolOptions {
                return (.http2, try HTTP2Options(config.http2ProtocolOptions, path: "http2_protocol_options"), maxRequests)
            }
            return (.http1, HTTP2Options(), maxRequests)
        }
        let path = "typed_extension_protocol_options['\(httpProtocolOptionsKey)']"
        let options: Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions
        do {
            options = try Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions(unpackingAny: any)
        } catch {
            throw ClusterConfigError(path, "cannot decode \(any.typeURL): \(error)")
        }
        if options.commonHTTPProtocolOptions.hasMaxRequestsPerConnection {
            maxRequests = Int(options.commonHTTPProtocolOptions.maxRequestsPerConnection.value)
        }
        switch options.upstreamProtocolOptions {
        case .explicitHTTPConfig(let explicit)?:
            switch explicit.protocolConfig {
            case .http2ProtocolOptions(let http2)?:
                return (.http2, try HTTP2Options(http2, path: path + ".explicit_http_config.http2_protocol_options"),
                        maxRequests)
            case .http3ProtocolOptions?:
                throw ClusterConfigError(path + ".explicit_http_config.http3_protocol_options", "HTTP/3 is not supported")
            case .httpProtocolOptions?, nil:
                return (.http1, HTTP2Options(), maxRequests)
            }
        case .useDownstreamProtocolConfig(let downstream)?:
            if downstream.hasHTTP3ProtocolOptions {
                throw ClusterConfigError(path + ".use_downstream_protocol_config.http3_protocol_options",
                                         "HTTP/3 is not supported")
            }
            return (.downstream, try HTTP2Options(downstream.http2ProtocolOptions,
                                                  path: path + ".use_downstream_protocol_config.http2_protocol_options"),
                    maxRequests)
        case .autoConfig(let auto)?:
            // ALPN picks the protocol over TLS; without TLS there is no ALPN and Envoy speaks HTTP/1.1.
            if auto.hasHTTP3ProtocolOptions {
                throw ClusterConfigError(path + ".auto_config.http3_protocol_options", "HTTP/3 is not supported")
            }
            return (config.hasTransportSocket ? .auto : .http1,
                    try HTTP2Options(auto.http2ProtocolOptions, path: path + ".auto_config.http2_protocol_options"),
                    maxRequests)
        case nil:
            return (.http1, HTTP2Options(), maxRequests)
        }
    }

    static func lookupFamily(_ family: Envoy_Config_Cluster_V3_Cluster.DnsLookupFamily) -> DNSLookupFamily {
        switch family {
        case .v4Only: .v4Only
        case .v6Only: .v6Only
        case .v4Preferred: .v4Preferred
        case .all: .all
        default: .auto
        }
    }

    /// The hosts of an EDS assignment; unchanged hosts (same address, port and weight) are kept, with
    /// their stats and connections.
    public func applyAssignment(_ assignment: Envoy_Config_Endpoint_V3_ClusterLoadAssignment) throws {
        var config = self.config
        config.loadAssignment = assignment
        let (fresh, _) = try Self.hosts(of: config, discoveryType: .static)
        let current = hosts
        let merged = fresh.map { host in current.first { $0.isSame(as: host) } ?? host }
        overprovisioningFactor.store(assignment.policy.hasOverprovisioningFactor
                                     ? Int(assignment.policy.overprovisioningFactor.value) : 140, ordering: .relaxed)
        if merged.map(ObjectIdentifier.init) != current.map(ObjectIdentifier.init) {
            stats.membershipChange.increment()
            replaceHosts(merged)
        }
        stats.updateSuccess.increment()
    }

    /// The hosts known without DNS (IP literals), and for DNS clusters every endpoint to resolve.
    static func hosts(of config: Envoy_Config_Cluster_V3_Cluster, discoveryType: DiscoveryType) throws
        -> ([Host], [DNSEndpoint])
    {
        var hosts: [Host] = []
        var dnsEndpoints: [DNSEndpoint] = []
        for (localityIndex, locality) in config.loadAssignment.endpoints.enumerated() {
            for (index, lbEndpoint) in locality.lbEndpoints.enumerated() {
                let path = "load_assignment.endpoints[\(localityIndex)].lb_endpoints[\(index)]"
                guard case .endpoint(let endpoint)? = lbEndpoint.hostIdentifier else {
                    throw ClusterConfigError(path, "named endpoints are not supported")
                }
                guard case .socketAddress(let socket)? = endpoint.address.address else {
                    throw ClusterConfigError(path + ".endpoint.address", "only socket_address is supported")
                }
                guard case .portValue(let port)? = socket.portSpecifier, port > 0, port <= 65535 else {
                    throw ClusterConfigError(path + ".endpoint.address.socket_address.port_value",
                                             "a port between 1 and 65535 is required")
                }
                if discoveryType == .static, !Self.isIPLiteral(socket.address) {
                    throw ClusterConfigError(path + ".endpoint.address.socket_address.address",
                                             "malformed IP address: \(socket.address)")
                }
                let weight = lbEndpoint.hasLoadBalancingWeight ? lbEndpoint.loadBalancingWeight.value : 1
                let place = Host.Locality(region: locality.locality.region, zone: locality.locality.zone,
                                          subZone: locality.locality.subZone)
                let health = Self.healthStatusName(lbEndpoint.healthStatus)
                let localityWeight = locality.hasLoadBalancingWeight ? locality.loadBalancingWeight.value : 0
                if discoveryType == .static {
                    hosts.append(Host(address: socket.address, port: Int(port), hostname: endpoint.hostname, weight: weight,
                                      priority: locality.priority, locality: place, localityWeight: localityWeight,
                                      edsHealthStatus: health))
                } else {
                    dnsEndpoints.append(DNSEndpoint(name: socket.address, port: Int(port), weight: weight))
                    // An IP literal needs no lookup: usable at once, with the literal as its name.
                    if Self.isIPLiteral(socket.address) {
                        hosts.append(Host(address: socket.address, port: Int(port), hostname: socket.address, weight: weight,
                                          priority: locality.priority, locality: place, localityWeight: localityWeight,
                                      edsHealthStatus: health))
                    }
                }
            }
        }
        if discoveryType == .logicalDNS, dnsEndpoints.count != 1 {
            throw ClusterConfigError("load_assignment", "LOGICAL_DNS clusters must have a single host")
        }
        return (hosts, dnsEndpoints)
    }

    /// Envoy's name for an EDS `health_status`; UNKNOWN is served as HEALTHY, as Envoy treats it.
    static func healthStatusName(_ status: Envoy_Config_Core_V3_HealthStatus) -> String {
        switch status {
        case .unhealthy: "UNHEALTHY"
        case .draining: "DRAINING"
        case .timeout: "TIMEOUT"
        case .degraded: "DEGRADED"
        default: "HEALTHY"
        }
    }

    static func isIPLiteral(_ text: String) -> Bool {
        if text.contains(":") { return (try? SocketAddress(ipAddress: text, port: 0)) != nil }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isNumber) && Int(part)! <= 255
        }
    }

    private static func priority(of thresholds: Envoy_Config_Cluster_V3_CircuitBreakers.Thresholds) -> ResourcePriority {
        thresholds.priority == .high ? .high : .default
    }

    /// One priority's `circuit_breakers.thresholds` entry; unset limits keep Envoy's defaults.
    static func thresholds(of config: Envoy_Config_Cluster_V3_CircuitBreakers.Thresholds,
                           path: String) throws -> CircuitBreakerThresholds {
        var thresholds = CircuitBreakerThresholds()
        if config.hasMaxConnections { thresholds.maxConnections = config.maxConnections.value }
        if config.hasMaxPendingRequests { thresholds.maxPendingRequests = config.maxPendingRequests.value }
        if config.hasMaxRequests { thresholds.maxRequests = config.maxRequests.value }
        if config.hasMaxRetries { thresholds.maxRetries = config.maxRetries.value }
        if config.hasRetryBudget {
            let budget = config.retryBudget
            let percent = budget.hasBudgetPercent ? budget.budgetPercent.value : 20
            guard (0...100).contains(percent) else {
                throw ClusterConfigError(path + ".retry_budget.budget_percent", "must be between 0 and 100")
            }
            thresholds.retryBudget = (percent, budget.hasMinRetryConcurrency ? Int(budget.minRetryConcurrency.value) : 3)
        }
        thresholds.trackRemaining = config.trackRemaining
        return thresholds
    }
}
