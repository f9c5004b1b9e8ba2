import NIOCore
import NIOHPACK
import NIOHTTP2

/// On an HTTP/2 stream, turns response HEADERS followed by an empty final DATA frame into one HEADERS
/// frame with END_STREAM, as Envoy sends headers-only responses. gRPC needs it: a trailers-only
/// reply (`grpc-status` in the headers) must end on its HEADERS frame. NIO's HTTP/1-style codec
/// writes the end of a bodiless response as an empty DATA frame, so the headers are held until the
/// next write or flush. Headers whose values change with every response leave unindexed
/// (`HTTP2ResponseHeaderIndexing`).
final class HeadersOnlyResponseCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var held: (headers: HTTP2Frame.FramePayload.Headers, promise: EventLoopPromise<Void>?)?

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var payload = unwrapOutboundIn(data)
        if case .headers(var headers) = payload {
            headers.headers = HTTP2ResponseHeaderIndexing.volatileValuesUnindexed(headers.headers)
            payload = .headers(headers)
        }
        if let (headers, heldPromise) = held {
            held = nil
            if case .data(let frame) = payload, frame.endStream, case .byteBuffer(let bytes) = frame.data,
               bytes.readableBytes == 0
            {
                var merged = headers
                merged.endStream = true
                if let heldPromise, let promise { heldPromise.futureResult.cascade(to: promise) }
                context.write(wrapOutboundOut(.headers(merged)), promise: heldPromise ?? promise)
                return
            }
            context.write(wrapOutboundOut(.headers(headers)), promise: heldPromise)
        }
        if case .headers(let headers) = payload, !headers.endStream {
            held = (headers, promise)
            return
        }
        context.write(wrapOutboundOut(payload), promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        release(context: context)
        context.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        release(context: context)
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        held?.promise?.fail(ChannelError.ioOnClosedChannel)
        held = nil
    }

    private func release(context: ChannelHandlerContext) {
        guard let (headers, promise) = held else { return }
        held = nil
        context.write(wrapOutboundOut(.headers(headers)), promise: promise)
    }
}
