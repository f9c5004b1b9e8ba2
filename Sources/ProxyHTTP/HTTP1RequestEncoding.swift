import NIOCore
import NIOHTTP1
import ProxyUpstream

/// The proxy's HTTP/1.x encoder for upstream requests, which `UpstreamConnectionHandler` drives on
/// its own pipeline (see `UpstreamRequestEncoder`).
public enum HTTP1RequestEncoding {
    public static func makeEncoder() -> any UpstreamRequestEncoder { HTTP1OutboundBuffer() }
}

extension HTTP1OutboundBuffer: UpstreamRequestEncoder {
    mutating func encode(_ part: HTTPClientRequestPart, context: ChannelHandlerContext) -> Bool {
        write(part, context: context, promise: nil)
    }

    mutating func emit(context: ChannelHandlerContext) {
        emit(context: context, promise: nil)
    }
}
