import NIOCore
import NIOHTTP1
@testable import ProxyHTTP

// `HTTP1OutboundBuffer` as encoder handlers of their own (the connection manager and the upstream
// connection handler use it directly), so tests can put it in an EmbeddedChannel and compare its bytes
// with NIO's encoders'.

final class HTTP1ResponseEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData

    private var buffer = HTTP1OutboundBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !buffer.write(unwrapOutboundIn(data), context: context, promise: promise) {
            context.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        }
    }

    func flush(context: ChannelHandlerContext) { buffer.flush(context: context) }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        buffer.emit(context: context, promise: nil)
        context.leavePipeline(removalToken: removalToken)
    }
}

final class HTTP1RequestEncoder: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData

    private var buffer = HTTP1OutboundBuffer()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if !buffer.write(unwrapOutboundIn(data), context: context, promise: promise) {
            context.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        }
    }

    func flush(context: ChannelHandlerContext) { buffer.flush(context: context) }
}
