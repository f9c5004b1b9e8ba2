import ProxyCore
import XDSAPI
import XDSResource

public typealias RBACFilterProto = Envoy_Extensions_Filters_Http_Rbac_V3_RBAC

extension RBACFilter {
    /// Compiles an `envoy.filters.http.rbac` config for the connection manager `statPrefix`.
    public convenience init(_ proto: RBACFilterProto, statPrefix: String, store: StatsStore, path: String) throws {
        if proto.hasMatcher || proto.hasShadowMatcher {
            throw RouteConfigError(path + ".matcher", "matcher-based RBAC is not supported yet; use rules")
        }
        let rules = proto.hasRules ? try RBACRules(proto.rules, path: path + ".rules") : nil
        let shadow = proto.hasShadowRules ? try RBACRules(proto.shadowRules, path: path + ".shadow_rules") : nil
        func counter(_ prefix: String, _ stat: String) -> Counter {
            store.counter("http.\(statPrefix).rbac.\(prefix)\(stat)",
                          StatTags(extractedName: "http.rbac.\(prefix)\(stat)",
                                   tags: [StatTags.Tag("envoy_http_conn_manager_prefix", statPrefix)]))
        }
        self.init(rules: rules, shadowRules: shadow,
                  allowed: counter(proto.rulesStatPrefix, "allowed"), denied: counter(proto.rulesStatPrefix, "denied"),
                  shadowAllowed: counter(proto.shadowRulesStatPrefix, "shadow_allowed"),
                  shadowDenied: counter(proto.shadowRulesStatPrefix, "shadow_denied"))
    }
}

extension RBACRules {
    init(_ proto: Envoy_Config_Rbac_V3_RBAC, path: String) throws {
        let action: Action
        switch proto.action {
        case .allow: action = .allow
        case .deny: action = .deny
        case .log: action = .log
        case .UNRECOGNIZED(let value): throw RouteConfigError(path + ".action", "unknown action \(value)")
        }
        if proto.hasAuditLoggingOptions { throw RouteConfigError(path + ".audit_logging_options", "not supported yet") }
        let policies = try proto.policies.keys.sorted().map { name in
            let policy = proto.policies[name]!
            let policyPath = "\(path).policies[\"\(name)\"]"
            if policy.hasCondition || policy.hasCheckedCondition || policy.hasCelConfig {
                throw RouteConfigError(policyPath + ".condition", "CEL conditions are not supported")
            }
            guard !policy.permissions.isEmpty, !policy.principals.isEmpty else {
                throw RouteConfigError(policyPath, "a policy needs at least one permission and one principal")
            }
            return RBACPolicy(
                name: name,
                permissions: try policy.permissions.enumerated().map { try RBACPermission($1, path: "\(policyPath).permissions[\($0)]") },
                principals: try policy.principals.enumerated().map { try RBACPrincipal($1, path: "\(policyPath).principals[\($0)]") })
        }
        self.init(action: action, policies: policies)
    }
}

extension StringMatch {
    public init(_ matcher: Envoy_Type_Matcher_V3_StringMatcher, path: String) throws {
        self.init(try HeaderMatcher.rule(matcher, path: path), ignoreCase: matcher.ignoreCase)
    }

    init(path matcher: Envoy_Type_Matcher_V3_PathMatcher, at path: String) throws {
        guard case .path(let string)? = matcher.rule else { throw RouteConfigError(path, "a path matcher is required") }
        try self.init(string, path: path + ".path")
    }
}

private func cidr(_ range: Envoy_Config_Core_V3_CidrRange, path: String) throws -> CIDRRange {
    let length = range.hasPrefixLen ? Int(range.prefixLen.value) : (range.addressPrefix.contains(":") ? 128 : 32)
    guard let parsed = CIDRRange(address: range.addressPrefix, prefixLength: length) else {
        throw RouteConfigError(path, "malformed IP range \(range.addressPrefix)/\(length)")
    }
    return parsed
}

extension RBACPermission {
    init(_ proto: Envoy_Config_Rbac_V3_Permission, path: String) throws {
        switch proto.rule {
        case .any(let any)?:
            guard any else { throw RouteConfigError(path + ".any", "any must be true") }
            self = .any
        case .andRules(let set)?:
            self = .and(try set.rules.enumerated().map { try RBACPermission($1, path: "\(path).and_rules.rules[\($0)]") })
        case .orRules(let set)?:
            self = .or(try set.rules.enumerated().map { try RBACPermission($1, path: "\(path).or_rules.rules[\($0)]") })
        case .notRule(let rule)?: self = .not(try RBACPermission(rule, path: path + ".not_rule"))
        case .header(let header)?: self = .header(try HeaderMatcher(header, path: path + ".header"))
        case .urlPath(let matcher)?: self = .urlPath(try StringMatch(path: matcher, at: path + ".url_path"))
        case .destinationIp(let range)?: self = .destinationIP(try cidr(range, path: path + ".destination_ip"))
        case .destinationPort(let port)?: self = .destinationPort(Int(port))
        case .destinationPortRange(let range)?: self = .destinationPortRange(Int(range.start), Int(range.end))
        case nil: throw RouteConfigError(path, "a permission rule is required")
        default: throw RouteConfigError(path, "this permission rule is not supported yet")
        }
    }
}

extension RBACPrincipal {
    init(_ proto: Envoy_Config_Rbac_V3_Principal, path: String) throws {
        switch proto.identifier {
        case .any(let any)?:
            guard any else { throw RouteConfigError(path + ".any", "any must be true") }
            self = .any
        case .andIds(let set)?:
            self = .and(try set.ids.enumerated().map { try RBACPrincipal($1, path: "\(path).and_ids.ids[\($0)]") })
        case .orIds(let set)?:
            self = .or(try set.ids.enumerated().map { try RBACPrincipal($1, path: "\(path).or_ids.ids[\($0)]") })
        case .notID(let id)?: self = .not(try RBACPrincipal(id, path: path + ".not_id"))
        case .authenticated(let authenticated)?:
            self = .authenticated(authenticated.hasPrincipalName
                ? try StringMatch(authenticated.principalName, path: path + ".authenticated.principal_name") : nil)
        // With no XFF trust configured, the remote address is the direct one.
        case .sourceIp(let range)?, .directRemoteIp(let range)?, .remoteIp(let range)?:
            self = .directRemoteIP(try cidr(range, path: path + ".direct_remote_ip"))
        case .header(let header)?: self = .header(try HeaderMatcher(header, path: path + ".header"))
        case .urlPath(let matcher)?: self = .urlPath(try StringMatch(path: matcher, at: path + ".url_path"))
        case nil: throw RouteConfigError(path, "a principal identifier is required")
        default: throw RouteConfigError(path, "this principal identifier is not supported yet")
        }
    }
}
