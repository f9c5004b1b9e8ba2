import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyUpstream

/// Opens TCP connections to upstream hosts.
struct NIOUpstreamConnector: UpstreamConnector {
    func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                 handler: UpstreamConnectionHandler) -> EventLoopFuture<any Channel> {
        connect(to: host, on: loop, timeout: timeout) { channel in
            // Left-over bytes after a 101 belong to the upgraded protocol (WebSocket tunnels).
            try channel.pipeline.syncOperations.addHTTPClientHandlers(leftOverBytesStrategy: .forwardBytes)
            try channel.pipeline.syncOperations.addHandler(handler)
        }
    }

    func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                 initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try initializer(channel) }
            }
        if let address = try? SocketAddress(ipAddress: host.address, port: host.port) {
            return bootstrap.connect(to: address)
        }
        return bootstrap.connect(host: host.address, port: host.port)
    }
}
