import NIOCore
import NIOSSL
import NIOTLS

/// Sits after NIOSSL's handler until the handshake ends: counts it, then lets `onHandshake` build
/// the rest of the pipeline (the codec chosen by ALPN) and leaves. A failed handshake is counted as
/// Envoy counts it and closes the connection.
public final class TLSHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny
    public typealias Completion = (_ channel: any Channel, _ negotiatedProtocol: String?) throws -> Void

    private let stats: TLSStats
    private let isServer: Bool
    private let onHandshake: Completion
    private let onFailure: ((any Error) -> Void)?
    private var finished = false

    public init(context: TLSContext, onFailure: ((any Error) -> Void)? = nil, onHandshake: @escaping Completion) {
        self.stats = context.stats
        self.isServer = context.side == .server
        self.onHandshake = onHandshake
        self.onFailure = onFailure
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case TLSUserEvent.handshakeCompleted(let negotiated)? = event as? TLSUserEvent, !finished else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        finished = true
        stats.handshake.increment()
        let sync = context.pipeline.syncOperations
        stats.countVersion(try? sync.handler(type: NIOSSLHandler.self).tlsVersion)
        if isServer, (try? sync.handler(type: NIOSSLHandler.self).peerCertificate) == nil {
            stats.noCertificate.increment()
        }
        do {
            try onHandshake(context.channel, negotiated)
        } catch {
            onFailure?(error)
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
        sync.removeHandler(context: context, promise: nil)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !finished else {
            context.fireErrorCaught(error)
            return
        }
        finished = true
        stats.countFailure(error)
        onFailure?(error)
        context.close(promise: nil)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            finished = true
            onFailure?(TLSHandshakeClosed())
        }
        context.fireChannelInactive()
    }
}

/// The peer closed the connection before the TLS handshake finished.
public struct TLSHandshakeClosed: Error, CustomStringConvertible {
    public var description: String { "connection closed during the TLS handshake" }
}
