import NIOCore
import NIOHTTP1

/// Encodes the requests of an upstream HTTP/1.x connection into one buffer per flush. Replaces
/// NIO's `HTTPRequestEncoder` and its header validator; NIO's response decoder stays behind it in
/// the pipeline, where it sees each request head go by (a response to HEAD has no body).
public final class HTTP1RequestEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    public typealias OutboundIn = HTTPClientRequestPart
    public typealias OutboundOut = IOData

    private var buffer = HTTP1OutboundBuffer()

    public init() {}

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !buffer.write(unwrapOutboundIn(data), context: context, promise: promise) {
            context.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        }
    }

    public func flush(context: ChannelHandlerContext) { buffer.flush(context: context) }

    public func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        buffer.emit(context: context, promise: nil)
        context.leavePipeline(removalToken: removalToken)
    }
}
