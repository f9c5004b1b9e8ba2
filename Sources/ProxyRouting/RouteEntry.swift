/// One compiled route: its match and what to do with a matching request.
public struct RouteEntry: Sendable {
    public var name: String
    public var match: RouteMatch
    public var action: RouteAction

    public init(name: String = "", match: RouteMatch, action: RouteAction) {
        self.name = name
        self.match = match
        self.action = action
    }
}

/// The `route` action: where a request goes and the policies on the way.
public struct RouteAction: Sendable {
    /// Envoy's default route timeout, 15 s.
    public static let defaultTimeoutMs: Int64 = 15_000

    public var cluster: String
    public var autoHostRewrite: Bool
    public var hostRewriteLiteral: String?
    public var prefixRewrite: String?
    /// 0 disables the timeout.
    public var timeoutMs: Int64
    public var retryPolicy: RetryPolicy?

    public init(cluster: String, autoHostRewrite: Bool = false, hostRewriteLiteral: String? = nil,
                prefixRewrite: String? = nil, timeoutMs: Int64 = RouteAction.defaultTimeoutMs,
                retryPolicy: RetryPolicy? = nil) {
        self.cluster = cluster
        self.autoHostRewrite = autoHostRewrite
        self.hostRewriteLiteral = hostRewriteLiteral
        self.prefixRewrite = prefixRewrite
        self.timeoutMs = timeoutMs
        self.retryPolicy = retryPolicy
    }

    /// The upstream path after `prefix_rewrite` (the matched prefix replaced), or the path unchanged.
    public func rewrittenPath(_ path: String, matched: RouteMatch.PathRule) -> String {
        guard let prefixRewrite else { return path }
        switch matched {
        case .prefix(let prefix), .separatedPrefix(let prefix), .path(let prefix):
            guard path.count >= prefix.count else { return path }
            return prefixRewrite + path.dropFirst(prefix.count)
        case .regex:
            return path
        }
    }
}
