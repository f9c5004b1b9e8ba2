/// A route's `redirect` action: the parts of the request URL it replaces, and the status it answers with.
public struct Redirect: Sendable, Equatable {
    public var scheme: String?
    public var host: String?
    public var port: Int?
    public var path: String?
    public var prefixRewrite: String?
    public var status: Int
    public var stripQuery: Bool

    public init(scheme: String? = nil, host: String? = nil, port: Int? = nil, path: String? = nil,
                prefixRewrite: String? = nil, status: Int = 301, stripQuery: Bool = false) {
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.prefixRewrite = prefixRewrite
        self.status = status
        self.stripQuery = stripQuery
    }

    /// The `location` for a request to `requestHost` + `uri` over `requestScheme`; `matched` is the
    /// route's path rule, for prefix rewrites.
    public func location(requestScheme: String, requestHost: String, uri: String, matched: RouteMatch.PathRule) -> String {
        let scheme = self.scheme ?? requestScheme
        var authority = host ?? requestHost
        if let port {
            authority = Self.withoutPort(authority) + ":\(port)"
        } else if self.scheme != nil || host != nil {
            // A new scheme or host drops a port that only made sense for the old one.
            let bare = Self.withoutPort(authority)
            let originalPort = authority.dropFirst(bare.count).dropFirst()
            let isDefault = (scheme == "https" && originalPort == "443") || (scheme == "http" && originalPort == "80")
            if self.scheme != nil || isDefault { authority = bare }
        }
        let queryStart = uri.firstIndex(of: "?") ?? uri.endIndex
        var newPath = String(uri[..<queryStart])
        let query = stripQuery ? "" : String(uri[queryStart...])
        if let path {
            newPath = path
        } else if let prefixRewrite {
            newPath = RouteAction(cluster: "", prefixRewrite: prefixRewrite).rewrittenPath(newPath, matched: matched)
        }
        return "\(scheme)://\(authority)\(newPath)\(query)"
    }

    static func withoutPort(_ host: String) -> String {
        if host.hasPrefix("[") { return host.firstIndex(of: "]").map { String(host[...$0]) } ?? host }
        return host.split(separator: ":", maxSplits: 1).first.map(String.init) ?? host
    }
}
