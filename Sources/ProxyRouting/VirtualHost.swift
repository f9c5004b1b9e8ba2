/// A compiled virtual host: its domains and its routes in order.
public struct VirtualHost: Sendable {
    public var name: String
    public var domains: [String]
    public var routes: [RouteEntry]

    public init(name: String, domains: [String], routes: [RouteEntry]) {
        self.name = name
        self.domains = domains
        self.routes = routes
    }

    /// The first route that matches, as Envoy evaluates them: in order, first match wins.
    public func route(path: Substring, query: Substring? = nil, header: (String) -> String?,
                      random: () -> UInt64 = { 0 }) -> RouteEntry? {
        routes.first { $0.match.matches(path: path, query: query, header: header, random: random) }
    }
}
