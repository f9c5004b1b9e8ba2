import NIOCore
import NIOHTTP2

/// Copies each DATA payload an ADS stream receives into a buffer of its own (its size rounded up
/// to a power of two, as NIO allocates). HTTP/2 hands a stream its DATA as slices of the buffer
/// the connection read them into (up to `ADSReadBuffer.maximumSize`), and gRPC's deframer keeps
/// the last slice it was given for as long as the stream lives, so every connected proxy pinned a
/// whole read buffer (~6 KB measured at 1,000 proxies) to hold its last ACK of a few hundred
/// bytes. The copy costs a memcpy of what the proxies send, which is small after their first
/// request.
public final class ADSStreamDataCopier: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    public typealias InboundIn = HTTP2Frame.FramePayload
    public typealias InboundOut = HTTP2Frame.FramePayload

    public init() {}

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .data(var payload) = unwrapInboundIn(data), case .byteBuffer(let bytes) = payload.data,
              bytes.storageCapacity > bytes.readableBytes else {
            context.fireChannelRead(data)
            return
        }
        var copy = context.channel.allocator.buffer(capacity: bytes.readableBytes)
        copy.writeImmutableBuffer(bytes)
        payload.data = .byteBuffer(copy)
        context.fireChannelRead(wrapInboundOut(.data(payload)))
    }

    /// For the transport's stream callback: puts the copier in front of gRPC's stream handlers.
    @Sendable public static func install(_ stream: any Channel) -> EventLoopFuture<Void> {
        stream.eventLoop.makeCompletedFuture {
            try stream.pipeline.syncOperations.addHandler(ADSStreamDataCopier(), position: .first)
        }
    }
}
