import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import ProxyHTTP

/// `HTTP1OutboundBuffer` as an encoder handler of its own (the connection manager and the upstream
/// connection handler use it directly), so tests can put it in an EmbeddedChannel and compare its bytes
/// with NIO's encoders'.
final class HTTP1EncoderHandler<Head: HTTP1EncodableHead & Equatable & Sendable>: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPPart<Head, IOData>
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

typealias HTTP1ResponseEncoder = HTTP1EncoderHandler<HTTPResponseHead>
typealias HTTP1RequestEncoder = HTTP1EncoderHandler<HTTPRequestHead>

extension EmbeddedChannel {
    /// The bytes written to this channel so far, as text.
    func writtenText() throws -> String {
        var text = ""
        while let data = try readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { throw CancellationError() }
            text += String(buffer: buffer)
        }
        return text
    }
}
