/// A compiled RouteConfiguration: virtual hosts indexed by domain the way Envoy picks them (exact,
/// then the longest `*.suffix`, then the longest `prefix.*`, then `*`), then routes in order.
public final class RouteTable: Sendable {
    public let name: String
    public let virtualHosts: [VirtualHost]
    private let exact: [String: Int]
    /// Suffix wildcards, longest suffix first; the stored string is the suffix without `*`.
    private let suffixes: [(String, Int)]
    /// Prefix wildcards, longest prefix first; the stored string is the prefix without `*`.
    private let prefixes: [(String, Int)]
    private let fallback: Int?
    /// Only `*` domains: every request gets the fallback without its Host being looked at.
    private let onlyFallback: Bool

    public init(name: String, virtualHosts: [VirtualHost]) {
        self.name = name
        self.virtualHosts = virtualHosts
        var exact: [String: Int] = [:]
        var suffixes: [(String, Int)] = []
        var prefixes: [(String, Int)] = []
        var fallback: Int?
        for (index, host) in virtualHosts.enumerated() {
            for domain in host.domains.map({ $0.lowercased() }) {
                if domain == "*" {
                    fallback = fallback ?? index
                } else if domain.hasPrefix("*") {
                    suffixes.append((String(domain.dropFirst()), index))
                } else if domain.hasSuffix("*") {
                    prefixes.append((String(domain.dropLast()), index))
                } else if exact[domain] == nil {
                    exact[domain] = index
                }
            }
        }
        self.exact = exact
        self.suffixes = suffixes.sorted { $0.0.count > $1.0.count }
        self.prefixes = prefixes.sorted { $0.0.count > $1.0.count }
        self.fallback = fallback
        onlyFallback = exact.isEmpty && suffixes.isEmpty && prefixes.isEmpty
    }

    /// The virtual host for a Host/`:authority` value. A host with a port that matches nothing is
    /// tried again without the port.
    public func virtualHost(for host: String) -> VirtualHost? {
        if onlyFallback { return fallback.map { virtualHosts[$0] } }
        let lowered = host.lowercased()
        if let index = lookup(lowered) { return virtualHosts[index] }
        if let portless = Self.stripPort(lowered), let index = lookup(portless) { return virtualHosts[index] }
        return fallback.map { virtualHosts[$0] }
    }

    /// The route for a request, or nil (Envoy's 404 with response flag NR).
    public func route(host: String, path: Substring, query: Substring? = nil, header: (String) -> String?,
                      random: () -> UInt64 = { 0 }) -> RouteEntry? {
        virtualHost(for: host)?.route(path: path, query: query, header: header, random: random)
    }

    private func lookup(_ host: String) -> Int? {
        if let index = exact[host] { return index }
        // A wildcard must stand for at least one character, as in Envoy.
        let length = host.utf8.count
        if let match = suffixes.first(where: { length > $0.0.utf8.count && host.hasSuffix($0.0) }) { return match.1 }
        if let match = prefixes.first(where: { length > $0.0.utf8.count && host.hasPrefix($0.0) }) { return match.1 }
        return nil
    }

    static func stripPort(_ host: String) -> String? {
        if host.hasPrefix("[") {
            guard let close = host.firstIndex(of: "]"), host.index(after: close) < host.endIndex else { return nil }
            return String(host[...close])
        }
        guard let colon = host.lastIndex(of: ":"), host.firstIndex(of: ":") == colon else { return nil }
        return String(host[..<colon])
    }
}
