import NIOCore
import ProxyAccessLog
import ProxyCore
import ProxyHTTP
import ProxyRouting
import ProxyTracing
import ProxyUpstream
import SwiftProtobuf
import XDSAPI
import XDSResource

typealias HCMProto = Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager
typealias GRPCStatsProto = Envoy_Extensions_Filters_Http_GrpcStats_V3_FilterConfig

/// A listener, HCM or bootstrap setting meshproxy cannot serve.
public typealias ListenerConfigError = FieldError

/// An HttpConnectionManager compiled as far as it can be without its routes (which may come from RDS)
/// and clusters (which change with CDS); `config(clusters:routes:)` completes it.
struct ConnectionManagerTemplate: @unchecked Sendable {
    enum RouteSource {
        case inline(RouteTable, Envoy_Config_Route_V3_RouteConfiguration)
        case rds(String)
    }

    let statPrefix: String
    let serverName: String
    let stats: ConnectionManagerStats
    let routeSource: RouteSource
    let codec: DownstreamCodec
    let http2Options: HTTP2Options
    let upgradeTypes: [String: Bool]
    let accessLoggers: [AccessLogger]
    let tracer: (any HTTPTracer)?
    let forwardClientCert: ForwardClientCert
    let filters: HTTPFilters
    let timeouts: ConnectionTimeouts
    let maxRequestHeadersCount: Int
    let maxRequestHeadersBytes: Int
    let pathNormalizer: PathNormalizer
    let underscoreHeaders: ConnectionManagerConfig.UnderscoreHeaders
    let forwardedFor: ForwardedFor

    /// The HTTP filters before the router, compiled.
    struct HTTPFilters {
        var chain: [any HTTPFilter] = []
        var grpcStats: GRPCStatsFilter?
    }

    /// `http2_protocol_options`, with the connection manager's `stream_error_on_invalid_http_message`
    /// where the options' `override_stream_error_on_invalid_http_message` does not decide (as Envoy:
    /// the override, else the connection manager's field, else the deprecated
    /// `stream_error_on_invalid_http_messaging`).
    static func http2Options(_ hcm: HCMProto, path: String) throws -> HTTP2Options {
        var options = try HTTP2Options(hcm.http2ProtocolOptions, path: path + ".http2_protocol_options")
        if !hcm.http2ProtocolOptions.hasOverrideStreamErrorOnInvalidHTTPMessage, hcm.hasStreamErrorOnInvalidHTTPMessage {
            options.streamErrorOnInvalidHTTPMessage = hcm.streamErrorOnInvalidHTTPMessage.value
        }
        return options
    }

    static func compile(_ hcm: HCMProto, path: String, listenerStatScope: String, store: StatsStore,
                        outbound: Bool = false) throws -> Self {
        guard !hcm.statPrefix.isEmpty else { throw ListenerConfigError(path + ".stat_prefix", "stat_prefix is required") }
        let codec: DownstreamCodec
        switch hcm.codecType {
        case .auto: codec = .auto
        case .http1: codec = .http1
        case .http2: codec = .http2
        default: throw ListenerConfigError(path + ".codec_type", "codec_type \(hcm.codecType) is not supported")
        }
        let http2Options = try Self.http2Options(hcm, path: path)
        var upgradeTypes: [String: Bool] = [:]
        for (index, upgrade) in hcm.upgradeConfigs.enumerated() {
            let upgradePath = "\(path).upgrade_configs[\(index)]"
            guard !upgrade.upgradeType.isEmpty else {
                throw ListenerConfigError(upgradePath + ".upgrade_type", "an upgrade type is required")
            }
            guard upgrade.filters.isEmpty else {
                throw ListenerConfigError(upgradePath + ".filters", "per-upgrade filter chains are not supported")
            }
            upgradeTypes[upgrade.upgradeType.lowercased()] = !upgrade.hasEnabled || upgrade.enabled.value
        }
        let filters = try ConnectionManagerConfig.compileFilters(hcm.httpFilters, statPrefix: hcm.statPrefix,
                                                                     store: store, path: path + ".http_filters")
        let source: RouteSource
        switch hcm.routeSpecifier {
        case .routeConfig(let config):
            do {
                let filterConfigs = HTTPFilterRegistry.perFilterConfigs(store: store)
                source = .inline(try RouteTable(config, filterConfigs: filterConfigs), config)
            } catch let error as RouteConfigError {
                throw ListenerConfigError(path + ".route_config." + error.fieldPath, error.reason)
            }
        case .rds(let rds):
            guard case .ads? = rds.configSource.configSourceSpecifier else {
                throw ListenerConfigError(path + ".rds.config_source", "only ADS is supported as the RDS config source")
            }
            guard !rds.routeConfigName.isEmpty else {
                throw ListenerConfigError(path + ".rds.route_config_name", "a route_config_name is required")
            }
            source = .rds(rds.routeConfigName)
        case .scopedRoutes: throw ListenerConfigError(path + ".scoped_routes", "scoped routes are not supported")
        case nil: throw ListenerConfigError(path, "one of route_config or rds is required")
        }
        var forwardClientCert = ForwardClientCert()
        switch hcm.forwardClientCertDetails {
        case .sanitize: forwardClientCert.mode = .sanitize
        case .forwardOnly: forwardClientCert.mode = .forwardOnly
        case .appendForward: forwardClientCert.mode = .appendForward
        case .sanitizeSet: forwardClientCert.mode = .sanitizeSet
        case .alwaysForwardOnly: forwardClientCert.mode = .alwaysForwardOnly
        case .UNRECOGNIZED(let value):
            throw ListenerConfigError(path + ".forward_client_cert_details", "unknown value \(value)")
        }
        if hcm.hasSetCurrentClientCertDetails {
            let details = hcm.setCurrentClientCertDetails
            forwardClientCert.details = ForwardClientCert.Details(
                subject: details.hasSubject && details.subject.value, cert: details.cert, chain: details.chain,
                dns: details.dns, uri: details.uri)
        }
        if hcm.hasForwardClientCertMatcher {
            throw ListenerConfigError(path + ".forward_client_cert_matcher", "not supported yet")
        }
        let (timeouts, maxHeaders) = try Self.timeouts(hcm, path: path)
        switch hcm.pathWithEscapedSlashesAction {
        case .implementationSpecificDefault, .keepUnchanged: break
        default:
            throw ListenerConfigError(path + ".path_with_escaped_slashes_action", "only KEEP_UNCHANGED is supported yet")
        }
        return ConnectionManagerTemplate(
            statPrefix: hcm.statPrefix, serverName: hcm.serverName.isEmpty ? "envoy" : hcm.serverName,
            stats: ConnectionManagerStats(statPrefix: hcm.statPrefix, listenerScope: listenerStatScope, store: store),
            routeSource: source, codec: codec, http2Options: http2Options, upgradeTypes: upgradeTypes,
            accessLoggers: try AccessLogger.compile(hcm.accessLog, path: path + ".access_log"),
            tracer: hcm.hasTracing ? try HTTPTracers.compile(
                hcm.tracing, path: path + ".tracing", outbound: outbound, context: ServerContext.tracing) : nil,
            forwardClientCert: forwardClientCert, filters: filters, timeouts: timeouts,
            maxRequestHeadersCount: maxHeaders, maxRequestHeadersBytes: try Self.maxRequestHeadersBytes(hcm, path: path),
            pathNormalizer: PathNormalizer(normalize: hcm.hasNormalizePath && hcm.normalizePath.value,
                                           mergeSlashes: hcm.mergeSlashes),
            underscoreHeaders: try Self.underscoreHeaders(hcm, path: path),
            forwardedFor: try Self.forwardedFor(hcm, path: path))
    }

    /// `max_request_headers_kb`: 60 unless set, at most 8192 (Envoy's bounds).
    static func maxRequestHeadersBytes(_ hcm: HCMProto, path: String) throws -> Int {
        guard hcm.hasMaxRequestHeadersKb else { return HTTP1Syntax.maximumHeadSize }
        let kilobytes = hcm.maxRequestHeadersKb.value
        guard kilobytes >= 1, kilobytes <= 8192 else {
            throw ListenerConfigError(path + ".max_request_headers_kb", "value must be in [1, 8192], not \(kilobytes)")
        }
        return Int(kilobytes) * 1024
    }

    /// `use_remote_address`, `xff_num_trusted_hops`, `skip_xff_append` and `internal_address_config`.
    static func forwardedFor(_ hcm: HCMProto, path: String) throws -> ForwardedFor {
        var forwarded = ForwardedFor()
        forwarded.useRemoteAddress = hcm.hasUseRemoteAddress && hcm.useRemoteAddress.value
        forwarded.trustedHops = Int(hcm.xffNumTrustedHops)
        forwarded.skipAppend = hcm.skipXffAppend
        forwarded.internalRanges = try hcm.internalAddressConfig.cidrRanges.enumerated().map { index, range in
            guard let cidr = CIDRRange(address: range.addressPrefix, prefixLength: Int(range.prefixLen.value)) else {
                throw ListenerConfigError("\(path).internal_address_config.cidr_ranges[\(index)]",
                                          "malformed IP prefix \(range.addressPrefix)/\(range.prefixLen.value)")
            }
            return cidr
        }
        if forwarded.useRemoteAddress { forwarded.localAddress = ServerContext.localAddress }
        return forwarded
    }

    static func underscoreHeaders(_ hcm: HCMProto, path: String) throws -> ConnectionManagerConfig.UnderscoreHeaders {
        switch hcm.commonHTTPProtocolOptions.headersWithUnderscoresAction {
        case .allow: return .allow
        case .rejectRequest: return .reject
        case .dropHeader: return .drop
        case .UNRECOGNIZED(let value):
            throw ListenerConfigError(path + ".common_http_protocol_options.headers_with_underscores_action",
                                      "unknown value \(value)")
        }
    }

    /// The HCM's timeouts and header count limit, with Envoy's defaults; a zero duration disables a timeout.
    static func timeouts(_ hcm: HCMProto, path: String) throws -> (ConnectionTimeouts, Int) {
        func amount(_ duration: Google_Protobuf_Duration) -> TimeAmount? {
            let nanoseconds = duration.seconds * 1_000_000_000 + Int64(duration.nanos)
            return nanoseconds > 0 ? .nanoseconds(nanoseconds) : nil
        }
        var timeouts = ConnectionTimeouts()
        if hcm.hasStreamIdleTimeout { timeouts.streamIdle = amount(hcm.streamIdleTimeout) }
        if hcm.hasRequestTimeout { timeouts.request = amount(hcm.requestTimeout) }
        if hcm.hasRequestHeadersTimeout { timeouts.requestHeaders = amount(hcm.requestHeadersTimeout) }
        if hcm.hasDrainTimeout { timeouts.drain = amount(hcm.drainTimeout) ?? .zero }
        var maxHeaders = 100
        if hcm.hasCommonHTTPProtocolOptions {
            let common = hcm.commonHTTPProtocolOptions
            if common.hasIdleTimeout { timeouts.connectionIdle = amount(common.idleTimeout) }
            if common.hasMaxConnectionDuration { timeouts.maxConnectionDuration = amount(common.maxConnectionDuration) }
            if common.hasMaxHeadersCount {
                guard common.maxHeadersCount.value >= 1 else {
                    throw ListenerConfigError(path + ".common_http_protocol_options.max_headers_count",
                                              "value must be greater than or equal to 1")
                }
                maxHeaders = Int(common.maxHeadersCount.value)
            }
            if common.hasMaxStreamDuration { timeouts.maxStreamDuration = amount(common.maxStreamDuration) }
        }
        return (timeouts, maxHeaders)
    }

    /// The RDS name this manager waits for, if its routes come from RDS.
    var rdsName: String? {
        if case .rds(let name) = routeSource { return name }
        return nil
    }

    /// Like Envoy's validate_clusters for static route configs: a route to nowhere is an error.
    func validateClusters(_ clusters: ClusterManager, path: String) throws {
        guard case .inline(let table, _) = routeSource else { return }
        for host in table.virtualHosts {
            for name in host.routes.flatMap({ $0.action?.clusterNames ?? [] }) where clusters[name] == nil {
                throw ListenerConfigError(path + ".route_config", "route: unknown cluster '\(name)'")
            }
        }
    }

    /// The runnable config, or nil while RDS routes have not arrived (the listener is warming).
    func config(clusters: ClusterManager, routes: [String: RouteTable], generation: Int,
                retryBufferLimit: Int = 1 << 20) -> ConnectionManagerConfig? {
        tracer?.update(clusters: clusters)
        let table: RouteTable
        switch routeSource {
        case .inline(let inline, _): table = inline
        case .rds(let name):
            guard let fromRDS = routes[name] else { return nil }
            table = fromRDS
        }
        return ConnectionManagerConfig(statPrefix: statPrefix, routeTable: table, clusters: clusters,
                                       serverName: serverName, stats: stats, retryBufferLimit: retryBufferLimit,
                                       filterChainGeneration: generation,
                                       codec: codec, http2Options: http2Options, upgradeTypes: upgradeTypes,
                                       accessLoggers: accessLoggers, tracer: tracer, forwardClientCert: forwardClientCert,
                                       filters: filters.chain, grpcStats: filters.grpcStats, timeouts: timeouts,
                                       maxRequestHeadersCount: maxRequestHeadersCount,
                                       maxRequestHeadersBytes: maxRequestHeadersBytes, pathNormalizer: pathNormalizer,
                                       underscoreHeaders: underscoreHeaders, forwardedFor: forwardedFor)
    }
}

extension ConnectionManagerConfig {
    static let routerFilterName = "envoy.filters.http.router"

    static let grpcStatsTypeURL = TypeURL.prefix + GRPCStatsProto.protoMessageName

    /// The HTTP filters: RBAC filters (compiled, in order), grpc_stats, and the router, which must be
    /// last. Any other filter is refused as Envoy refuses an unknown one. A router without
    /// `typed_config` means its default config (Envoy 1.19 accepted that; 1.40 does not; meshproxy
    /// does, deliberately).
    static func compileFilters(_ filters: [Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpFilter],
                               statPrefix: String, store: StatsStore, path: String) throws -> ConnectionManagerTemplate.HTTPFilters {
        guard !filters.isEmpty else { throw ListenerConfigError(path, "the router filter is required") }
        var compiled = ConnectionManagerTemplate.HTTPFilters()
        for (index, filter) in filters.enumerated() {
            let filterPath = "\(path)[\(index)]"
            let isRouter: Bool
            switch filter.configType {
            case .typedConfig(let any) where HTTPFilterRegistry.factory(forTypeURL: any.typeURL) != nil:
                if filter.disabled { throw ListenerConfigError(filterPath + ".disabled", "disabled filters are not supported yet") }
                let factory = HTTPFilterRegistry.factory(forTypeURL: any.typeURL)!
                do {
                    compiled.chain.append(try factory.make(any, name: filter.name,
                                                           context: HTTPFilterContext(statPrefix: statPrefix, store: store),
                                                           path: "typed_config"))
                } catch let error as FieldError {
                    throw ListenerConfigError(filterPath + "." + error.fieldPath, error.reason)
                }
                continue
            case .typedConfig(let any) where any.typeURL == grpcStatsTypeURL:
                guard compiled.grpcStats == nil else {
                    throw ListenerConfigError(filterPath, "only one grpc_stats filter is supported")
                }
                compiled.grpcStats = try grpcStats(try GRPCStatsProto(unpackingAny: any), store: store,
                                                   path: filterPath + ".typed_config")
                continue
            case .typedConfig(let any):
                isRouter = any.typeURL.hasSuffix("/envoy.extensions.filters.http.router.v3.Router")
            case nil:
                isRouter = filter.name == routerFilterName
            default:
                isRouter = false
            }
            guard isRouter else {
                let url = filter.typedConfig.typeURL
                throw ListenerConfigError(filterPath,
                                          "Didn't find a registered implementation for '\(filter.name)' with type URL: '\(url)'")
            }
            guard index == filters.count - 1 else {
                throw ListenerConfigError(filterPath, "the router must be the last HTTP filter")
            }
        }
        return compiled
    }

    static func grpcStats(_ proto: GRPCStatsProto, store: StatsStore, path: String) throws -> GRPCStatsFilter {
        if proto.enableUpstreamStats {
            throw ListenerConfigError(path + ".enable_upstream_stats", "upstream_rq_time per method is not supported yet")
        }
        let methods: GRPCStatsFilter.Methods
        switch proto.perMethodStatSpecifier {
        case .statsForAllMethods(let all)? where all.value: methods = .all
        case .statsForAllMethods?, nil: methods = .allowlist([:])
        case .individualMethodStatsAllowlist(let list)?:
            methods = .allowlist(Dictionary(list.services.map { ($0.name, Set($0.methodNames)) }, uniquingKeysWith: { $0.union($1) }))
        }
        // emit_filter_state only feeds other filters, which meshproxy does not have; it changes no stat.
        return GRPCStatsFilter(methods: methods, replaceDotsInServiceName: proto.replaceDotsInGrpcServiceName, store: store)
    }
}
