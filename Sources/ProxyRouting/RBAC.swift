import ProxyCore

/// What an RBAC policy looks at: the request's headers and path, the connection's addresses, and
/// its TLS peer identity.
public struct RBACRequest {
    /// The path without its query.
    public var path: Substring
    /// Header lookup, pseudo-headers (`:method`, `:path`, `:authority`) included.
    public var header: (String) -> String?
    public var directRemoteIP: [UInt8]?
    public var localIP: [UInt8]?
    public var localPort: Int?
    public var tls: DownstreamTLSInfo?

    public init(path: Substring, header: @escaping (String) -> String?, directRemoteIP: [UInt8]?, localIP: [UInt8]?,
                localPort: Int?, tls: DownstreamTLSInfo?) {
        self.path = path
        self.header = header
        self.directRemoteIP = directRemoteIP
        self.localIP = localIP
        self.localPort = localPort
        self.tls = tls
    }
}

/// Envoy's RBAC `Permission`: what is being done.
public indirect enum RBACPermission: Sendable {
    case any
    case and([RBACPermission])
    case or([RBACPermission])
    case not(RBACPermission)
    case header(HeaderMatcher)
    case urlPath(StringMatch)
    case destinationIP(CIDRRange)
    case destinationPort(Int)
    /// [start, end), as Int32Range.
    case destinationPortRange(Int, Int)

    func matches(_ request: RBACRequest) -> Bool {
        switch self {
        case .any: true
        case .and(let rules): rules.allSatisfy { $0.matches(request) }
        case .or(let rules): rules.contains { $0.matches(request) }
        case .not(let rule): !rule.matches(request)
        case .header(let matcher): matcher.matches(request.header(matcher.name))
        case .urlPath(let string): string.matches(String(request.path))
        case .destinationIP(let range): request.localIP.map(range.contains) ?? false
        case .destinationPort(let port): request.localPort == port
        case .destinationPortRange(let start, let end): request.localPort.map { $0 >= start && $0 < end } ?? false
        }
    }
}

/// Envoy's RBAC `Principal`: who is doing it.
public indirect enum RBACPrincipal: Sendable {
    case any
    case and([RBACPrincipal])
    case or([RBACPrincipal])
    case not(RBACPrincipal)
    /// A TLS peer with a certificate; `principal_name` is checked against its URI SANs, then DNS SANs,
    /// then subject (the first that exists), as Envoy does. No name: any mutual-TLS peer.
    case authenticated(StringMatch?)
    case directRemoteIP(CIDRRange)
    case header(HeaderMatcher)
    case urlPath(StringMatch)

    func matches(_ request: RBACRequest) -> Bool {
        switch self {
        case .any: return true
        case .and(let ids): return ids.allSatisfy { $0.matches(request) }
        case .or(let ids): return ids.contains { $0.matches(request) }
        case .not(let id): return !id.matches(request)
        case .authenticated(let name):
            guard let tls = request.tls, tls.peerPresentedCertificate else { return false }
            guard let name else { return true }
            if !tls.peerURISANs.isEmpty { return tls.peerURISANs.contains(where: name.matches) }
            if !tls.peerDNSSANs.isEmpty { return tls.peerDNSSANs.contains(where: name.matches) }
            return name.matches(tls.peerSubject)
        case .directRemoteIP(let range): return request.directRemoteIP.map(range.contains) ?? false
        case .header(let matcher): return matcher.matches(request.header(matcher.name))
        case .urlPath(let string): return string.matches(String(request.path))
        }
    }
}

/// One named policy: it matches when any permission and any principal match.
public struct RBACPolicy: Sendable {
    public var name: String
    public var permissions: [RBACPermission]
    public var principals: [RBACPrincipal]

    public init(name: String, permissions: [RBACPermission], principals: [RBACPrincipal]) {
        self.name = name
        self.permissions = permissions
        self.principals = principals
    }

    func matches(_ request: RBACRequest) -> Bool {
        permissions.contains { $0.matches(request) } && principals.contains { $0.matches(request) }
    }
}

/// An RBAC rule set: ALLOW lets through what a policy matches, DENY stops it, LOG only notes it.
public struct RBACRules: Sendable {
    public enum Action: Sendable { case allow, deny, log }

    public var action: Action
    /// In name order, as Envoy keeps them; the first match is reported.
    public var policies: [RBACPolicy]

    public init(action: Action, policies: [RBACPolicy]) {
        self.action = action
        self.policies = policies.sorted { $0.name < $1.name }
    }

    /// Whether the request may pass, and the policy that decided (nil: none matched).
    public func evaluate(_ request: RBACRequest) -> (allowed: Bool, policy: String?) {
        let matched = policies.first { $0.matches(request) }?.name
        switch action {
        case .allow: return (matched != nil, matched)
        case .deny: return (matched == nil, matched)
        case .log: return (true, matched)
        }
    }
}

/// One `envoy.filters.http.rbac` filter: enforced rules, shadow rules that are only counted, and
/// their stats (`http.<prefix>.rbac.[<rules_stat_prefix>]allowed` and friends).
public final class RBACFilter: Sendable {
    public let rules: RBACRules?
    public let shadowRules: RBACRules?
    public let allowed, denied, shadowAllowed, shadowDenied: Counter

    public init(rules: RBACRules?, shadowRules: RBACRules?, allowed: Counter, denied: Counter, shadowAllowed: Counter,
                shadowDenied: Counter) {
        self.rules = rules
        self.shadowRules = shadowRules
        self.allowed = allowed
        self.denied = denied
        self.shadowAllowed = shadowAllowed
        self.shadowDenied = shadowDenied
    }

    /// Counts and decides; returns the matched policy's name (or `none`) when the request is denied.
    public func check(_ request: RBACRequest) -> String? {
        if let shadowRules {
            let (ok, _) = shadowRules.evaluate(request)
            (ok ? shadowAllowed : shadowDenied).increment()
        }
        guard let rules else { return nil }
        let (ok, policy) = rules.evaluate(request)
        if ok {
            if rules.action != .log { allowed.increment() }
            return nil
        }
        denied.increment()
        return policy ?? "none"
    }
}
