import NIOCore

/// Opens upstream connections. Injected, so this module never imports NIOPosix and pools are
/// tested with in-memory channels.
public protocol UpstreamConnector: Sendable {
    /// Connects to `host` on `loop` with NIO's HTTP/1.1 client codec; the pipeline ends in `handler`.
    func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                 handler: UpstreamConnectionHandler) -> EventLoopFuture<any Channel>

    /// Connects to `host` on `loop` and lets `initializer` build the pipeline (HTTP/2 pools install
    /// NIO's HTTP/2 handler). `initializer` runs on `loop`.
    func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                 initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel>

    /// Whether this connector applied the cluster's `transport_socket` (TLS). A cluster with a
    /// transport socket is refused by a connector that did not, rather than spoken to in plaintext.
    var appliesTransportSocket: Bool { get }
}

extension UpstreamConnector {
    public var appliesTransportSocket: Bool { false }
}
