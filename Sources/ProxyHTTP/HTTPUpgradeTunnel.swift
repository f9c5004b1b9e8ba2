import NIOCore
import NIOHTTP1
import ProxyCore
import ProxyUpstream

/// Turns an upgraded exchange (a WebSocket after the upstream's 101, a CONNECT) into a byte tunnel:
/// the HTTP codecs leave both pipelines and a pair of `TunnelHandler`s joins the two sockets. The
/// decoders were built to forward the bytes they hold past the upgrade, so nothing read early is lost.
enum HTTPUpgradeTunnel {
    /// Both channels must be on the current event loop. `response`, when given, is the proxy's
    /// answer already encoded, written to the client ahead of any upstream byte (a CONNECT's 2xx).
    static func splice(downstream: any Channel, upstream: any Channel, response: ByteBuffer? = nil) throws {
        let (downEnd, upEnd) = TunnelHandler.pair()
        try spliceUpstream(upstream, end: upEnd)
        try spliceDownstream(downstream, end: downEnd)
        if let response { downEnd.send(response) }
    }

    /// A CONNECT the proxy terminates: `upstream` is a plain TCP connection, and the proxy's own
    /// answer (`response`, already encoded) goes to the client before any upstream byte.
    static func splice(connectDownstream downstream: any Channel, rawUpstream upstream: any Channel,
                       response: ByteBuffer) throws {
        let (downEnd, upEnd) = TunnelHandler.pair()
        try upstream.pipeline.syncOperations.addHandler(upEnd)
        try spliceDownstream(downstream, end: downEnd)
        downEnd.send(response)
    }

    private static func spliceDownstream(_ downstream: any Channel, end: TunnelHandler) throws {
        let down = downstream.pipeline.syncOperations
        let downDecoder = try down.handler(type: HTTP1RequestParserHandler.self)
        // What the connection manager has encoded (the 101) goes before any tunnelled byte.
        try down.handler(type: HTTPConnectionManager.self).handOverEncodedBytes()
        try down.addHandler(end, position: .after(downDecoder))
        // Removing the parser hands the bytes it holds past the request to the tunnel end just after it.
        let left = downstream.eventLoop.makePromise(of: Void.self)
        down.removeHandler(downDecoder, promise: left)
        left.futureResult.assumeIsolated().whenSuccess { end.flushPartner() }
    }

    /// WebSocket or CONNECT over HTTP/2: the downstream is one stream, whose DATA frames carry the
    /// bytes. The tunnel's end goes in front of the stream's request reader, which then sees nothing.
    /// `upstream` speaks HTTP/1.1 after a 101, or is a plain TCP connection (`raw`).
    static func splice(downstreamStream stream: any Channel, upstream: any Channel, raw: Bool = false) throws {
        let down = stream.pipeline.syncOperations
        let translator = try down.handler(type: HTTP2ExtendedConnect.self)
        let (downEnd, upEnd) = TunnelHandler.pair()
        var decoderLeft: EventLoopPromise<Void>?
        if raw {
            try upstream.pipeline.syncOperations.addHandler(upEnd)
        } else {
            decoderLeft = upstream.eventLoop.makePromise(of: Void.self)
            try spliceUpstream(upstream, end: upEnd, decoderLeft: decoderLeft)
        }
        let frames = HTTP2StreamBytes()
        try down.addHandler(frames, position: .after(translator))
        try down.addHandler(downEnd, position: .after(frames))
        // The response parser leaves once the read it is parsing is done (it may be the one that
        // brought the 101); the bytes the client sent early may go upstream only once it has gone.
        if let decoderLeft {
            decoderLeft.futureResult.assumeIsolated().whenComplete { _ in translator.startTunnel() }
        } else {
            translator.startTunnel()
        }
    }

    private static func spliceUpstream(_ upstream: any Channel, end: TunnelHandler,
                                       decoderLeft: EventLoopPromise<Void>? = nil) throws {
        let up = upstream.pipeline.syncOperations
        let upDecoder = try up.handler(type: UpstreamResponseParserHandler.self)
        // What the connection handler has encoded goes before any tunnelled byte.
        try up.handler(type: UpstreamConnectionHandler.self).handOverEncodedBytes()
        try up.addHandler(end, position: .after(upDecoder))
        let left = decoderLeft ?? upstream.eventLoop.makePromise(of: Void.self)
        up.removeHandler(upDecoder, promise: left)
        left.futureResult.assumeIsolated().whenSuccess { end.flushPartner() }
    }
}
