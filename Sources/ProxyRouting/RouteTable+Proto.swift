import ProxyAccessLog
import SwiftProtobuf
import XDSAPI
import XDSResource

/// A route config that cannot be compiled.
public typealias RouteConfigError = FieldError

extension RouteTable {
    /// Compiles a RouteConfiguration. Features meshproxy does not implement yet are errors, so a
    /// config is never served with part of it silently ignored.
    /// `filterConfigs` compiles `typed_per_filter_config` for the proxy's HTTP filters.
    public convenience init(_ config: Envoy_Config_Route_V3_RouteConfiguration,
                            filterConfigs: PerFilterConfigCompiler = .ignoring) throws {
        let configEdits = try HeaderEdits(requestAdd: config.requestHeadersToAdd, requestRemove: config.requestHeadersToRemove,
                                          responseAdd: config.responseHeadersToAdd,
                                          responseRemove: config.responseHeadersToRemove, path: "")
        let hosts = try config.virtualHosts.enumerated().map { index, host in
            try VirtualHost(host, path: "virtual_hosts[\(index)]", broaderEdits: configEdits, filterConfigs: filterConfigs)
        }
        self.init(name: config.name, virtualHosts: hosts)
    }
}

extension VirtualHost {
    init(_ host: Envoy_Config_Route_V3_VirtualHost, path: String, broaderEdits: HeaderEdits,
         filterConfigs: PerFilterConfigCompiler) throws {
        guard !host.domains.isEmpty else { throw RouteConfigError(path + ".domains", "at least one domain is required") }
        let hostEdits = try HeaderEdits(requestAdd: host.requestHeadersToAdd, requestRemove: host.requestHeadersToRemove,
                                        responseAdd: host.responseHeadersToAdd,
                                        responseRemove: host.responseHeadersToRemove, path: path + ".")
            .then(broaderEdits)
        let hostFilterConfigs = try filterConfigs.compileAll(host.typedPerFilterConfig, path: path)
        let routes = try host.routes.enumerated().map { index, route in
            try RouteEntry(route, path: "\(path).routes[\(index)]", broaderEdits: hostEdits,
                           filterConfigs: filterConfigs, hostFilterConfigs: hostFilterConfigs)
        }
        self.init(name: host.name, domains: host.domains, routes: routes)
    }
}

extension RouteEntry {
    convenience init(_ route: Envoy_Config_Route_V3_Route, path: String, broaderEdits: HeaderEdits,
                     filterConfigs: PerFilterConfigCompiler = .ignoring,
                     hostFilterConfigs: [String: any Sendable] = [:]) throws {
        let perFilter = try filterConfigs.compileAll(route.typedPerFilterConfig, path: path, over: hostFilterConfigs)
        let match = try RouteMatch(route.match, path: path + ".match")
        let edits = try HeaderEdits(requestAdd: route.requestHeadersToAdd, requestRemove: route.requestHeadersToRemove,
                                    responseAdd: route.responseHeadersToAdd,
                                    responseRemove: route.responseHeadersToRemove, path: path + ".")
            .then(broaderEdits)
        self.init(name: route.name, match: match, kind: try Self.kind(of: route, path: path), headerEdits: edits,
                  perFilterConfigs: perFilter)
    }

    private static func kind(of route: Envoy_Config_Route_V3_Route, path: String) throws -> Kind {
        switch route.action {
        case .route(let action):
            return .forward(try RouteAction(action, path: path + ".route"))
        case .directResponse(let direct):
            guard (200...599).contains(direct.status) else {
                throw RouteConfigError(path + ".direct_response.status", "status must be between 200 and 599")
            }
            var body = ""
            switch direct.body.specifier {
            case .inlineString(let text): body = text
            case .inlineBytes(let bytes): body = String(decoding: bytes, as: UTF8.self)
            case nil: break
            default: throw RouteConfigError(path + ".direct_response.body", "only inline_string and inline_bytes are supported")
            }
            return .directResponse(status: Int(direct.status), body: body)
        case .redirect(let redirect):
            return .redirect(try Redirect(redirect, path: path + ".redirect"))
        default:
            throw RouteConfigError(path, "only the \"route\", \"redirect\" and \"direct_response\" actions are supported so far")
        }
    }
}

extension RouteMatch {
    init(_ match: Envoy_Config_Route_V3_RouteMatch, path: String) throws {
        let rule: PathRule
        switch match.pathSpecifier {
        case .prefix(let prefix): rule = .prefix(prefix)
        case .path(let exact): rule = .path(exact)
        case .pathSeparatedPrefix(let prefix): rule = .separatedPrefix(prefix)
        case .safeRegex(let regex): rule = .regex(try CompiledRegex(regex.regex, path: path + ".safe_regex.regex"))
        case .connectMatcher: rule = .connect
        case .pathMatchPolicy:
            throw RouteConfigError(path, "path_match_policy is not supported")
        case nil:
            throw RouteConfigError(path, "one of prefix, path, safe_regex or path_separated_prefix is required")
        }
        var headers = try match.headers.enumerated().map { index, header in
            try HeaderMatcher(header, path: "\(path).headers[\(index)]")
        }
        // `grpc: {}`: only gRPC requests.
        if match.hasGrpc { headers.append(HeaderMatcher(name: "content-type", rule: .prefix("application/grpc"))) }
        let queries = try match.queryParameters.enumerated().map { index, query in
            try HeaderMatcher(query, path: "\(path).query_parameters[\(index)]")
        }
        let fraction = match.hasRuntimeFraction
            ? try fractionOf(match.runtimeFraction.defaultValue, path: path + ".runtime_fraction.default_value") : nil
        if !match.dynamicMetadata.isEmpty || match.hasTlsContext || !match.filterState.isEmpty {
            throw RouteConfigError(path, "dynamic_metadata, tls_context and filter_state matching are not supported")
        }
        self.init(path: rule, caseSensitive: match.hasCaseSensitive ? match.caseSensitive.value : true, headers: headers,
                  queryParameters: queries, fraction: fraction)
    }
}

extension HeaderMatcher {
    public init(_ header: Envoy_Config_Route_V3_HeaderMatcher, path: String) throws {
        let rule: Rule
        var ignoreCase = false
        switch header.headerMatchSpecifier {
        case .exactMatch(let text): rule = .exact(text)
        case .prefixMatch(let text): rule = .prefix(text)
        case .suffixMatch(let text): rule = .suffix(text)
        case .containsMatch(let text): rule = .contains(text)
        case .presentMatch(let present): rule = .present(present)
        case .safeRegexMatch(let regex): rule = .regex(try CompiledRegex(regex.regex, path: path + ".safe_regex_match"))
        case .stringMatch(let matcher):
            rule = try Self.rule(matcher, path: path + ".string_match")
            ignoreCase = matcher.ignoreCase
        case .rangeMatch(let range):
            rule = .range(range.start, range.end)
        case nil:
            rule = .present(true)
        }
        self.init(name: header.name, rule: rule, invert: header.invertMatch, ignoreCase: ignoreCase)
    }

    /// A `query_parameters` entry: `string_match` or `present_match` on the parameter's value.
    init(_ query: Envoy_Config_Route_V3_QueryParameterMatcher, path: String) throws {
        guard !query.name.isEmpty else { throw RouteConfigError(path + ".name", "a parameter name is required") }
        switch query.queryParameterMatchSpecifier {
        case .stringMatch(let matcher):
            self.init(name: query.name, rule: try Self.rule(matcher, path: path + ".string_match"),
                      ignoreCase: matcher.ignoreCase, keepNameCase: true)
        case .presentMatch(let present):
            self.init(name: query.name, rule: .present(present), keepNameCase: true)
        case nil:
            self.init(name: query.name, rule: .present(true), keepNameCase: true)
        }
    }

    static func rule(_ matcher: Envoy_Type_Matcher_V3_StringMatcher, path: String) throws -> Rule {
        switch matcher.matchPattern {
        case .exact(let text): return .exact(text)
        case .prefix(let text): return .prefix(text)
        case .suffix(let text): return .suffix(text)
        case .contains(let text): return .contains(text)
        case .safeRegex(let regex): return .regex(try CompiledRegex(regex.regex, path: path + ".safe_regex"))
        case .custom, nil: throw RouteConfigError(path, "unsupported string matcher")
        }
    }
}

extension CompiledRegex {
    convenience init(_ pattern: String, path: String) throws {
        do {
            try self.init(pattern)
        } catch {
            throw RouteConfigError(path, "invalid regex \"\(pattern)\": \(error)")
        }
    }
}

extension RouteAction {
    convenience init(_ action: Envoy_Config_Route_V3_RouteAction, path: String) throws {
        var cluster = ""
        var clusterHeader: String?
        var weighted: [WeightedCluster] = []
        switch action.clusterSpecifier {
        case .cluster(let name) where !name.isEmpty:
            cluster = name
        case .weightedClusters(let split):
            guard !split.clusters.isEmpty else {
                throw RouteConfigError(path + ".weighted_clusters.clusters", "at least one cluster is required")
            }
            weighted = try split.clusters.enumerated().map { index, target in
                let targetPath = "\(path).weighted_clusters.clusters[\(index)]"
                guard !target.name.isEmpty else { throw RouteConfigError(targetPath + ".name", "a cluster name is required") }
                return WeightedCluster(
                    name: target.name, weight: target.hasWeight ? target.weight.value : 0,
                    headerEdits: try HeaderEdits(requestAdd: target.requestHeadersToAdd,
                                                 requestRemove: target.requestHeadersToRemove,
                                                 responseAdd: target.responseHeadersToAdd,
                                                 responseRemove: target.responseHeadersToRemove, path: targetPath + "."))
            }
            guard weighted.contains(where: { $0.weight > 0 }) else {
                throw RouteConfigError(path + ".weighted_clusters", "the weights must not all be 0")
            }
            cluster = weighted[0].name
        case .clusterHeader(let header) where !header.isEmpty:
            clusterHeader = header.lowercased()
        default:
            throw RouteConfigError(path, "\"cluster\", \"cluster_header\" or \"weighted_clusters\" is required (plugins are not supported yet)")
        }
        var autoHostRewrite = false
        var literal: String?
        var hostHeader: String?
        switch action.hostRewriteSpecifier {
        case .autoHostRewrite(let flag): autoHostRewrite = flag.value
        case .hostRewriteLiteral(let host): literal = host
        case .hostRewriteHeader(let header): hostHeader = header.lowercased()
        case nil: break
        default: throw RouteConfigError(path, "host_rewrite_path_regex is not supported yet")
        }
        var regexRewrite: (CompiledRegex, String)?
        if action.hasRegexRewrite {
            if !action.prefixRewrite.isEmpty {
                throw RouteConfigError(path, "prefix_rewrite and regex_rewrite cannot both be set")
            }
            regexRewrite = (try CompiledRegex(action.regexRewrite.pattern.regex, path: path + ".regex_rewrite.pattern.regex"),
                            action.regexRewrite.substitution)
        }
        let retryPolicy = action.hasRetryPolicy ? try RetryPolicy(action.retryPolicy, path: path + ".retry_policy") : nil
        var grpcTimeoutMax: Int64?
        var grpcTimeoutOffset: Int64 = 0
        var maxStreamDuration: Int64?
        if action.hasMaxStreamDuration {
            let duration = action.maxStreamDuration
            if duration.hasMaxStreamDuration { maxStreamDuration = duration.maxStreamDuration.milliseconds }
            if duration.hasGrpcTimeoutHeaderMax { grpcTimeoutMax = duration.grpcTimeoutHeaderMax.milliseconds }
            if duration.hasGrpcTimeoutHeaderOffset { grpcTimeoutOffset = duration.grpcTimeoutHeaderOffset.milliseconds }
        }
        let hashPolicies = try action.hashPolicy.enumerated().map { index, policy in
            let policyPath = "\(path).hash_policy[\(index)]"
            switch policy.policySpecifier {
            case .header(let header)?:
                guard !header.hasRegexRewrite else { throw RouteConfigError(policyPath + ".header.regex_rewrite", "not supported yet") }
                return HashPolicy(source: .header(header.headerName.lowercased()), terminal: policy.terminal)
            case .cookie(let cookie)?:
                return HashPolicy(source: .cookie(cookie.name, ttlSeconds: cookie.hasTtl ? cookie.ttl.seconds : nil,
                                                  path: cookie.path,
                                                  attributes: cookie.attributes.map { ($0.name, $0.value) }),
                                  terminal: policy.terminal)
            case .connectionProperties(let properties)? where properties.sourceIp:
                return HashPolicy(source: .sourceIP, terminal: policy.terminal)
            case .queryParameter(let query)?:
                return HashPolicy(source: .queryParameter(query.name), terminal: policy.terminal)
            default:
                throw RouteConfigError(policyPath, "only header, cookie, connection_properties.source_ip and query_parameter hash policies are supported")
            }
        }
        var upgradeOverrides: [String: Bool] = [:]
        var terminatesConnect = false
        for (index, upgrade) in action.upgradeConfigs.enumerated() {
            let upgradePath = "\(path).upgrade_configs[\(index)]"
            let type = upgrade.upgradeType.lowercased()
            guard !type.isEmpty else { throw RouteConfigError(upgradePath + ".upgrade_type", "an upgrade type is required") }
            upgradeOverrides[type] = upgrade.hasEnabled ? upgrade.enabled.value : true
            if upgrade.hasConnectConfig {
                guard type == "connect" else {
                    throw RouteConfigError(upgradePath + ".connect_config", "only a CONNECT upgrade takes connect_config")
                }
                if upgrade.connectConfig.hasProxyProtocolConfig || upgrade.connectConfig.allowPost {
                    throw RouteConfigError(upgradePath + ".connect_config",
                                           "proxy_protocol_config and allow_post are not supported yet")
                }
                terminatesConnect = true
            }
        }
        let mirrors = try action.requestMirrorPolicies.enumerated().map { index, policy in
            let mirrorPath = "\(path).request_mirror_policies[\(index)]"
            guard !policy.cluster.isEmpty else {
                throw RouteConfigError(mirrorPath + ".cluster", "a cluster is required (cluster_header is not supported yet)")
            }
            guard policy.requestHeadersMutations.isEmpty, policy.hostRewriteLiteral.isEmpty else {
                throw RouteConfigError(mirrorPath, "request_headers_mutations and host_rewrite_literal are not supported yet")
            }
            let fraction = policy.hasRuntimeFraction
                ? try fractionOf(policy.runtimeFraction.defaultValue, path: mirrorPath + ".runtime_fraction.default_value")
                : nil
            return MirrorPolicy(cluster: policy.cluster, fraction: fraction,
                                appendShadowSuffix: !policy.disableShadowHostSuffixAppend)
        }
        self.init(cluster: cluster,
                  weightedClusters: weighted,
                  autoHostRewrite: autoHostRewrite,
                  hostRewriteLiteral: literal,
                  prefixRewrite: action.prefixRewrite.isEmpty ? nil : action.prefixRewrite,
                  regexRewrite: regexRewrite.map { (regex: $0.0, substitution: $0.1) },
                  clusterHeader: clusterHeader, hostRewriteHeader: hostHeader, mirrors: mirrors,
                  hashPolicies: hashPolicies, upgradeOverrides: upgradeOverrides, terminatesConnect: terminatesConnect,
                  timeoutMs: action.hasTimeout ? action.timeout.milliseconds : RouteAction.defaultTimeoutMs,
                  idleTimeoutMs: action.hasIdleTimeout ? action.idleTimeout.milliseconds : nil,
                  retryPolicy: retryPolicy, grpcTimeoutHeaderMaxMs: grpcTimeoutMax, maxStreamDurationMs: maxStreamDuration,
                  grpcTimeoutHeaderOffsetMs: grpcTimeoutOffset, priority: action.priority == .high ? .high : .default)
    }
}

extension RetryPolicy {
    convenience init(_ policy: Envoy_Config_Route_V3_RetryPolicy, path: String) throws {
        let unknown = Conditions.unknownNames(in: policy.retryOn)
        guard unknown.isEmpty else {
            throw RouteConfigError(path + ".retry_on", "unknown retry condition \"\(unknown[0])\"")
        }
        var base: Int64 = 25
        var max: Int64 = 250
        if policy.hasRetryBackOff {
            base = policy.retryBackOff.baseInterval.milliseconds
            guard base > 0 else { throw RouteConfigError(path + ".retry_back_off.base_interval", "must be greater than 0") }
            max = policy.retryBackOff.hasMaxInterval ? policy.retryBackOff.maxInterval.milliseconds : base * 10
            guard max >= base else {
                throw RouteConfigError(path + ".retry_back_off.max_interval", "must not be less than base_interval")
            }
        }
        let retriableHeaders = try policy.retriableHeaders.enumerated().map {
            try HeaderMatcher($1, path: "\(path).retriable_headers[\($0)]")
        }
        let retriableRequestHeaders = try policy.retriableRequestHeaders.enumerated().map {
            try HeaderMatcher($1, path: "\(path).retriable_request_headers[\($0)]")
        }
        for (index, predicate) in policy.retryHostPredicate.enumerated() {
            let url = predicate.typedConfig.typeURL
            guard url == TypeURL.prefix + Envoy_Extensions_Retry_Host_PreviousHosts_V3_PreviousHostsPredicate.protoMessageName
                    || (url.isEmpty && predicate.name == "envoy.retry_host_predicates.previous_hosts") else {
                throw RouteConfigError("\(path).retry_host_predicate[\(index)]",
                                       "Didn't find a registered implementation for '\(predicate.name)' with type URL: '\(url)'")
            }
        }
        if policy.hasRetryPriority { throw RouteConfigError(path + ".retry_priority", "not supported yet") }
        var resetHeaders: [ResetHeader] = []
        var resetMaxIntervalMs: Int64 = 300_000
        if policy.hasRateLimitedRetryBackOff {
            let backOff = policy.rateLimitedRetryBackOff
            guard !backOff.resetHeaders.isEmpty else {
                throw RouteConfigError(path + ".rate_limited_retry_back_off.reset_headers", "at least one reset header is required")
            }
            resetHeaders = backOff.resetHeaders.map { ResetHeader(name: $0.name.lowercased(), isUnixTimestamp: $0.format == .unixTimestamp) }
            if backOff.hasMaxInterval {
                resetMaxIntervalMs = backOff.maxInterval.milliseconds
                guard resetMaxIntervalMs > 0 else {
                    throw RouteConfigError(path + ".rate_limited_retry_back_off.max_interval", "must be greater than 0")
                }
            }
        }
        self.init(retryOn: Conditions(parsing: policy.retryOn),
                  numRetries: policy.hasNumRetries ? Int(policy.numRetries.value) : 1,
                  perTryTimeoutMs: policy.hasPerTryTimeout ? policy.perTryTimeout.milliseconds : 0,
                  perTryIdleTimeoutMs: policy.hasPerTryIdleTimeout ? policy.perTryIdleTimeout.milliseconds : 0,
                  retriableStatusCodes: Set(policy.retriableStatusCodes.map(Int.init)),
                  backOffBaseMs: base, backOffMaxMs: max,
                  retriableHeaders: retriableHeaders, retriableRequestHeaders: retriableRequestHeaders,
                  avoidsPreviousHosts: !policy.retryHostPredicate.isEmpty,
                  hostSelectionAttempts: Swift.max(1, Int(policy.hostSelectionRetryMaxAttempts)),
                  resetHeaders: resetHeaders, resetMaxIntervalMs: resetMaxIntervalMs)
    }
}

extension HeaderEdits {
    init(requestAdd: [Envoy_Config_Core_V3_HeaderValueOption], requestRemove: [String],
         responseAdd: [Envoy_Config_Core_V3_HeaderValueOption], responseRemove: [String], path: String) throws {
        self.init()
        self.requestAdd = try requestAdd.enumerated().map { try Self.addition($1, path: "\(path)request_headers_to_add[\($0)]") }
        self.requestRemove = requestRemove.map { $0.lowercased() }
        self.responseAdd = try responseAdd.enumerated().map { try Self.addition($1, path: "\(path)response_headers_to_add[\($0)]") }
        self.responseRemove = responseRemove.map { $0.lowercased() }
    }

    static func addition(_ option: Envoy_Config_Core_V3_HeaderValueOption, path: String) throws -> Addition {
        let name = option.header.key
        guard !name.isEmpty else { throw RouteConfigError(path + ".header.key", "a header name is required") }
        let value = option.header.value.isEmpty ? String(decoding: option.header.rawValue, as: UTF8.self) : option.header.value
        // %VARIABLE% operators are rendered per request; %% is a literal percent sign.
        var format: AccessLogFormat?
        if value.replacingOccurrences(of: "%%", with: "").contains("%") {
            do {
                format = try AccessLogFormat(text: value, literalPercent: "%%")
            } catch {
                throw RouteConfigError(path + ".header.value", "\(error)")
            }
        }
        let literal = value.replacingOccurrences(of: "%%", with: "%")
        let action: AppendAction
        if option.hasAppend {
            action = option.append.value ? .appendIfExistsOrAdd : .overwriteIfExistsOrAdd
        } else {
            switch option.appendAction {
            case .addIfAbsent: action = .addIfAbsent
            case .overwriteIfExistsOrAdd: action = .overwriteIfExistsOrAdd
            case .overwriteIfExists: action = .overwriteIfExists
            default: action = .appendIfExistsOrAdd
            }
        }
        return Addition(name: name, value: literal, action: action, format: format)
    }
}

extension Redirect {
    init(_ redirect: Envoy_Config_Route_V3_RedirectAction, path: String) throws {
        var scheme: String?
        switch redirect.schemeRewriteSpecifier {
        case .httpsRedirect(let https): scheme = https ? "https" : nil
        case .schemeRedirect(let name): scheme = name.isEmpty ? nil : name.lowercased()
        case nil: break
        }
        var newPath: String?
        var prefix: String?
        switch redirect.pathRewriteSpecifier {
        case .pathRedirect(let value): newPath = value
        case .prefixRewrite(let value): prefix = value
        case .regexRewrite: throw RouteConfigError(path + ".regex_rewrite", "regex_rewrite redirects are not supported yet")
        case nil: break
        }
        let status: Int
        switch redirect.responseCode {
        case .movedPermanently: status = 301
        case .found: status = 302
        case .seeOther: status = 303
        case .temporaryRedirect: status = 307
        case .permanentRedirect: status = 308
        case .UNRECOGNIZED(let code): throw RouteConfigError(path + ".response_code", "unknown response code \(code)")
        }
        self.init(scheme: scheme, host: redirect.hostRedirect.isEmpty ? nil : redirect.hostRedirect,
                  port: redirect.portRedirect == 0 ? nil : Int(redirect.portRedirect), path: newPath,
                  prefixRewrite: prefix, status: status, stripQuery: redirect.stripQuery)
    }
}

/// Whether a request falls in a share (`runtime_fraction`, a mirror's or a filter's percentage):
/// a draw below the numerator out of the denominator; a whole share draws nothing.
public func sampled(_ share: (numerator: UInt64, denominator: UInt64), random: () -> UInt64) -> Bool {
    share.denominator > 0 && (share.numerator >= share.denominator || random() % share.denominator < share.numerator)
}

/// A `FractionalPercent` as numerator and denominator.
public func fractionOf(_ percent: Envoy_Type_V3_FractionalPercent, path: String) throws -> (numerator: UInt64, denominator: UInt64) {
    switch percent.denominator {
    case .hundred: return (UInt64(percent.numerator), 100)
    case .tenThousand: return (UInt64(percent.numerator), 10_000)
    case .million: return (UInt64(percent.numerator), 1_000_000)
    case .UNRECOGNIZED(let value): throw RouteConfigError(path + ".denominator", "unknown denominator \(value)")
    }
}
