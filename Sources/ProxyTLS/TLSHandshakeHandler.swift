import NIOCore
import NIOSSL
import NIOTLS
import ProxyCore

/// Sits after NIOSSL's handler until the handshake ends: counts it, then lets `onHandshake` build
/// the rest of the pipeline (the codec chosen by ALPN) and leaves. A failed handshake is counted as
/// Envoy counts it and closes the connection.
public final class TLSHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny
    /// `info` describes a server-side connection (nil on the client side).
    public typealias Completion = (_ channel: any Channel, _ negotiatedProtocol: String?,
                                   _ info: DownstreamTLSInfo?) throws -> Void

    private let context: TLSContext
    private let stats: TLSStats
    private let isServer: Bool
    private let onHandshake: Completion
    private let onFailure: ((any Error) -> Void)?
    private var finished = false

    public init(context: TLSContext, onFailure: ((any Error) -> Void)? = nil, onHandshake: @escaping Completion) {
        self.context = context
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
        let tls = try? sync.handler(type: NIOSSLHandler.self)
        let version = tls?.tlsVersion
        let peer = tls?.peerCertificate
        stats.countVersion(version)
        if isServer, peer == nil { stats.noCertificate.increment() }
        let info = isServer ? self.context.connectionInfo(peer: peer, version: version) : nil
        do {
            try onHandshake(context.channel, negotiated, info)
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
