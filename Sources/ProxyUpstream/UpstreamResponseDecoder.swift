import NIOCore
import NIOHTTP1

/// NIO's HTTP/1 response decoder without its watch on outgoing writes: `UpstreamConnectionHandler` encodes
/// requests itself and tells the decoder each request's method, so no request part passes the decoder's
/// handler (NIO's handler for a write-observing decoder casts every outgoing part).
public struct UpstreamResponseDecoder: ByteToMessageDecoder {
    public typealias InboundOut = HTTPClientResponsePart

    /// NIO's decoder (a class), shared with the connection handler that reports the requests.
    public let decoder: HTTPResponseDecoder

    public init(leftOverBytesStrategy: RemoveAfterUpgradeStrategy) {
        decoder = HTTPResponseDecoder(leftOverBytesStrategy: leftOverBytesStrategy)
    }

    public mutating func decoderAdded(context: ChannelHandlerContext) {
        decoder.decoderAdded(context: context)
    }

    public mutating func decoderRemoved(context: ChannelHandlerContext) {
        decoder.decoderRemoved(context: context)
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        try decoder.decode(context: context, buffer: &buffer)
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer,
                                    seenEOF: Bool) throws -> DecodingState {
        try decoder.decodeLast(context: context, buffer: &buffer, seenEOF: seenEOF)
    }
}
