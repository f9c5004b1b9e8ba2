import NIOCore

extension SocketAddress {
    /// `127.0.0.1:8080` or `[::1]:8080`, as Envoy prints addresses in logs and admin output.
    public var logDescription: String? {
        guard let ip = ipAddress, let port else { return nil }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
