import ProxyCore
/// One compiled route: its match, what it does, and the header edits that apply to it. A class, so
/// that picking a route for a request hands on one reference, not a copy of every field.
public final class RouteEntry: Sendable {
    /// What a matching request gets.
    public enum Kind: Sendable {
        /// Proxied to a cluster.
        case forward(RouteAction)
        /// Answered by the proxy itself (`direct_response`).
        case directResponse(status: Int, body: String)
        /// Answered with a redirect to a rewritten URL.
        case redirect(Redirect)
    }

    public let name: String
    public let match: RouteMatch
    public let kind: Kind
    /// The forwarding action, or nil for a route the proxy answers itself.
    public let action: RouteAction?
    /// Route, virtual host and route configuration edits, flattened.
    public let headerEdits: HeaderEdits
    /// `typed_per_filter_config` of the route over its virtual host's, compiled, by filter name.
    public let perFilterConfigs: [String: any Sendable]

    public init(name: String = "", match: RouteMatch, kind: Kind, headerEdits: HeaderEdits = HeaderEdits(),
                perFilterConfigs: [String: any Sendable] = [:]) {
        self.name = name
        self.match = match
        self.kind = kind
        if case .forward(let action) = kind { self.action = action } else { self.action = nil }
        self.headerEdits = headerEdits
        self.perFilterConfigs = perFilterConfigs
    }

    /// A route that forwards to a cluster.
    public convenience init(name: String = "", match: RouteMatch, action: RouteAction,
                            headerEdits: HeaderEdits = HeaderEdits(), perFilterConfigs: [String: any Sendable] = [:]) {
        self.init(name: name, match: match, kind: .forward(action), headerEdits: headerEdits,
                  perFilterConfigs: perFilterConfigs)
    }
}

/// The `route` action: where a request goes and the policies on the way. Immutable and shared by
/// reference: a request reads it from the route it matched, and a copy of a struct with this many strings
/// and collections cost a retain and a release of each.
public final class RouteAction: Sendable {
    /// Envoy's default route timeout, 15 s.
    public static let defaultTimeoutMs: Int64 = 15_000

    /// One target of a weighted split, with its own header edits.
    public struct WeightedCluster: Sendable {
        public var name: String
        public var weight: UInt32
        public var headerEdits: HeaderEdits

        public init(name: String, weight: UInt32, headerEdits: HeaderEdits = HeaderEdits()) {
            self.name = name
            self.weight = weight
            self.headerEdits = headerEdits
        }
    }

    public let cluster: String
    /// A canary split; empty when the route names one cluster.
    public let weightedClusters: [WeightedCluster]
    public let autoHostRewrite: Bool
    public let hostRewriteLiteral: String?
    public let prefixRewrite: String?
    /// `regex_rewrite`: every match in the path replaced by the substitution (`\1`... for groups).
    public let regexRewrite: (regex: CompiledRegex, substitution: String)?
    /// `cluster_header`: the cluster is named by this request header.
    public let clusterHeader: String?
    /// `host_rewrite_header`: the Host comes from this request header, when the request has it.
    public let hostRewriteHeader: String?
    /// `request_mirror_policies`: clusters that get a copy of the request, whose answers are dropped.
    public let mirrors: [MirrorPolicy]
    /// `hash_policy`: what a ring-hash or Maglev cluster hashes for this route's requests.
    public let hashPolicies: [HashPolicy]
    /// `upgrade_configs` of the route: upgrade types (lower-cased) it enables or disables, overriding
    /// the connection manager's `upgrade_configs`.
    public let upgradeOverrides: [String: Bool]
    /// A `CONNECT` upgrade config with `connect_config`: the proxy answers CONNECT itself and opens a
    /// TCP connection to the cluster, rather than forwarding the CONNECT.
    public let terminatesConnect: Bool

    /// One `hash_policy` entry.
    public struct HashPolicy: Sendable {
        public enum Source: Sendable {
            case header(String)
            /// A cookie's value; with `ttl` (whole seconds, 0 for a session cookie) a request without the
            /// cookie gets one made for its connection, sent back with the response.
            case cookie(String, ttlSeconds: Int64? = nil, path: String = "", attributes: [(name: String, value: String)] = [])
            case sourceIP
            case queryParameter(String)
        }

        public var source: Source
        /// Stop at this policy when it produced a hash.
        public var terminal: Bool

        public init(source: Source, terminal: Bool = false) {
            self.source = source
            self.terminal = terminal
        }

        /// Envoy's combination of the policies that found a value: rotate the hash so far, xor the new one.
        /// `connectionCookie` gives the value a generated cookie takes (the same for every request of a
        /// connection, as Envoy's); `setCookie` receives the `set-cookie` value to answer with.
        public static func hash(_ policies: [HashPolicy], header: (String) -> String?, query: Substring?,
                                sourceIP: () -> String?, connectionCookie: () -> String? = { nil },
                                setCookie: (String) -> Void = { _ in }) -> UInt64? {
            var combined: UInt64?
            for policy in policies {
                var value: String?
                switch policy.source {
                case .header(let name): value = header(name)
                case .cookie(let name, let ttl, let path, let attributes):
                    value = header("cookie").flatMap { cookie($0, named: name) }
                    if value == nil, let ttl, let generated = connectionCookie() {
                        value = generated
                        setCookie(setCookieValue(name: name, value: generated, ttlSeconds: ttl, path: path,
                                                 attributes: attributes))
                    }
                case .sourceIP: value = sourceIP()
                case .queryParameter(let name): value = RouteMatch.parameter(name, in: query)
                }
                guard let value else { continue }
                let hash = XXHash64.hash(value)
                combined = combined.map { (($0 << 1) | ($0 >> 63)) ^ hash } ?? hash
                if policy.terminal { break }
            }
            return combined
        }

        /// A cookie's value, without the double quotes a generated one is sent in.
        static func cookie(_ header: String, named name: String) -> String? {
            for pair in header.split(separator: ";") {
                let trimmed = pair.drop(while: { $0 == " " })
                guard trimmed.hasPrefix(name + "=") else { continue }
                let value = trimmed.dropFirst(name.count + 1)
                if value.count >= 2, value.first == "\"", value.last == "\"" { return String(value.dropFirst().dropLast()) }
                return String(value)
            }
            return nil
        }

        /// The value a generated cookie takes: the hex of xxHash64 over the downstream connection's
        /// remote and local addresses (`127.0.0.1:5000127.0.0.1:10000`), as Envoy makes it.
        public static func connectionCookieValue(remote: String, local: String) -> String {
            let hex = String(XXHash64.hash(remote + local), radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }

        /// `name="value"; Max-Age=N; Path=P; A=V; HttpOnly`: Max-Age left out for a session cookie, Path
        /// when empty; the policy's `attributes` (`SameSite=Strict`, `Secure`) before HttpOnly, as Envoy writes them.
        static func setCookieValue(name: String, value: String, ttlSeconds: Int64, path: String,
                                   attributes: [(name: String, value: String)] = []) -> String {
            var text = "\(name)=\"\(value)\""
            if ttlSeconds > 0 { text += "; Max-Age=\(ttlSeconds)" }
            if !path.isEmpty { text += "; Path=\(path)" }
            for attribute in attributes { text += attribute.value.isEmpty ? "; \(attribute.name)" : "; \(attribute.name)=\(attribute.value)" }
            return text + "; HttpOnly"
        }
    }

    /// One `request_mirror_policies` entry.
    public struct MirrorPolicy: Sendable {
        public var cluster: String
        /// `runtime_fraction`: the share of requests mirrored (nil: all).
        public var fraction: (numerator: UInt64, denominator: UInt64)?
        /// Append `-shadow` to the host (before any port), unless `disable_shadow_host_suffix_append`.
        public var appendShadowSuffix: Bool

        public init(cluster: String, fraction: (numerator: UInt64, denominator: UInt64)? = nil, appendShadowSuffix: Bool = true) {
            self.cluster = cluster
            self.fraction = fraction
            self.appendShadowSuffix = appendShadowSuffix
        }

        public func samples(_ random: UInt64) -> Bool {
            guard let fraction else { return true }
            return sampled(fraction) { random }
        }

        /// `host:port` → `host-shadow:port`, as Envoy names the mirrored request's authority.
        public static func shadowHost(_ host: String) -> String {
            if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
                return String(host[...close]) + "-shadow" + host[host.index(after: close)...]
            }
            if let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon {
                return host[..<colon] + "-shadow" + host[colon...]
            }
            return host + "-shadow"
        }
    }
    /// 0 disables the timeout.
    public let timeoutMs: Int64
    /// The route's `idle_timeout`, replacing the connection manager's `stream_idle_timeout` for its
    /// requests (0 disables it); nil keeps the connection manager's.
    public let idleTimeoutMs: Int64?
    public let retryPolicy: RetryPolicy?
    /// `max_stream_duration.grpc_timeout_header_max`: when set, a request's `grpc-timeout` becomes its
    /// timeout, capped at this value (0: no cap). Nil: `grpc-timeout` is not looked at.
    public let grpcTimeoutHeaderMaxMs: Int64?
    /// `max_stream_duration.max_stream_duration`: the stream's longest life, replacing the connection
    /// manager's (0 disables it); nil keeps the connection manager's.
    public let maxStreamDurationMs: Int64?
    /// `max_stream_duration.grpc_timeout_header_offset`, taken off the `grpc-timeout`.
    public let grpcTimeoutHeaderOffsetMs: Int64
    /// `priority`: the cluster's circuit breaker and connection pools this route's requests use.
    public let priority: ResourcePriority

    public init(cluster: String, weightedClusters: [WeightedCluster] = [], autoHostRewrite: Bool = false,
                hostRewriteLiteral: String? = nil, prefixRewrite: String? = nil,
                regexRewrite: (regex: CompiledRegex, substitution: String)? = nil, clusterHeader: String? = nil,
                hostRewriteHeader: String? = nil, mirrors: [MirrorPolicy] = [], hashPolicies: [HashPolicy] = [],
                upgradeOverrides: [String: Bool] = [:], terminatesConnect: Bool = false,
                timeoutMs: Int64 = RouteAction.defaultTimeoutMs, idleTimeoutMs: Int64? = nil, retryPolicy: RetryPolicy? = nil,
                grpcTimeoutHeaderMaxMs: Int64? = nil, maxStreamDurationMs: Int64? = nil, grpcTimeoutHeaderOffsetMs: Int64 = 0,
                priority: ResourcePriority = .default) {
        self.cluster = cluster
        self.weightedClusters = weightedClusters
        self.autoHostRewrite = autoHostRewrite
        self.hostRewriteLiteral = hostRewriteLiteral
        self.prefixRewrite = prefixRewrite
        self.regexRewrite = regexRewrite
        self.clusterHeader = clusterHeader
        self.hostRewriteHeader = hostRewriteHeader
        self.mirrors = mirrors
        self.hashPolicies = hashPolicies
        self.upgradeOverrides = upgradeOverrides
        self.terminatesConnect = terminatesConnect
        self.timeoutMs = timeoutMs
        self.idleTimeoutMs = idleTimeoutMs
        self.retryPolicy = retryPolicy
        self.grpcTimeoutHeaderMaxMs = grpcTimeoutHeaderMaxMs
        self.maxStreamDurationMs = maxStreamDurationMs
        self.grpcTimeoutHeaderOffsetMs = grpcTimeoutHeaderOffsetMs
        self.priority = priority
    }

    /// Every cluster this action can send to (none known in advance with `cluster_header`), mirrors included.
    public var clusterNames: [String] {
        let mirrored = mirrors.map(\.cluster)
        if clusterHeader != nil { return mirrored }
        return (weightedClusters.isEmpty ? [cluster] : weightedClusters.map(\.name)) + mirrored
    }

    /// The cluster for one request; `random` picks within a weighted split, as Envoy does per request.
    public func pickCluster(random: UInt64) -> (name: String, edits: HeaderEdits?) {
        guard !weightedClusters.isEmpty else { return (cluster, nil) }
        let total = weightedClusters.reduce(UInt64(0)) { $0 + UInt64($1.weight) }
        guard total > 0 else { return (weightedClusters[0].name, weightedClusters[0].headerEdits) }
        var point = random % total
        for target in weightedClusters {
            if point < UInt64(target.weight) { return (target.name, target.headerEdits) }
            point -= UInt64(target.weight)
        }
        return (weightedClusters[weightedClusters.count - 1].name, weightedClusters[weightedClusters.count - 1].headerEdits)
    }

    /// The upstream path after `prefix_rewrite` (the matched prefix replaced), or the path unchanged.
    public func rewrittenPath(_ path: String, matched: RouteMatch.PathRule) -> String {
        if let regexRewrite { return regexRewrite.regex.replacingAll(in: path, with: regexRewrite.substitution) }
        guard let prefixRewrite else { return path }
        switch matched {
        case .prefix(let prefix), .separatedPrefix(let prefix), .path(let prefix):
            guard path.count >= prefix.count else { return path }
            return prefixRewrite + path.dropFirst(prefix.count)
        case .regex, .connect:
            return path
        }
    }
}
