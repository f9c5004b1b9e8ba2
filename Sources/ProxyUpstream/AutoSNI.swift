import NIOCore

/// `upstream_http_protocol_options` `auto_sni`: TLS to the cluster's hosts uses the request's host
/// (or `override_auto_sni_header`) as the server name, and with `auto_san_validation` the server's
/// certificate must carry it. Connections are pooled per name through per-SNI views of each host.
public struct AutoSNI: Sendable, Equatable {
    public var overrideHeader: String?
    public var sanValidation: Bool

    public init(overrideHeader: String?, sanValidation: Bool) {
        self.overrideHeader = overrideHeader
        self.sanValidation = sanValidation
    }

    /// The server name for a request whose upstream Host header is `host` (its port dropped).
    public static func serverName(fromHost host: String) -> String {
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") { return String(host[...close]) }
        if let colon = host.lastIndex(of: ":"), host[host.index(after: colon)...].allSatisfy(\.isNumber) {
            return String(host[..<colon])
        }
        return host
    }
}

/// One event loop's per-SNI views of a cluster's hosts, bounded: when full, the oldest views go, their
/// idle connections closed first so no pool keeps connections under a recycled identity.
final class SNIHostViews {
    private var views: [String: Host] = [:]
    private var order: [String] = []
    static let limit = 1024

    func view(of host: Host, sni: String, evicted: (Host) -> Void) -> Host {
        let key = "\(host.address)|\(host.port)|\(sni)"
        if let view = views[key], view.stats === host.stats { return view }
        if views.count >= Self.limit {
            for old in order.prefix(Self.limit / 4) {
                if let gone = views.removeValue(forKey: old) { evicted(gone) }
            }
            order.removeFirst(min(order.count, Self.limit / 4))
        }
        let view = Host(host, sni: sni)
        if views.updateValue(view, forKey: key) == nil { order.append(key) }
        return view
    }
}
