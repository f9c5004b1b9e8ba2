import NIOCore

/// Opens upstream connections with the HTTP/1.1 client codec installed. Injected, so this module
/// never imports NIOPosix and pools are tested with in-memory channels.
public protocol UpstreamConnector: Sendable {
    /// Connects to `host` on `loop`; the returned channel's pipeline ends in `handler`.
    func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                 handler: UpstreamConnectionHandler) -> EventLoopFuture<any Channel>
}
