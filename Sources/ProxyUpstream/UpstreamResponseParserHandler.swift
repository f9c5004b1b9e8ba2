import NIOCore
import NIOHTTP1
import ProxyCore

/// Reads an upstream HTTP/1.x connection's bytes with `HTTP1ResponseParser` and hands each part
/// straight to the connection handler behind it: no pipeline hop, `NIOAny` box or cast per part,
/// and no callbacks out of a C parser. When the connection becomes a tunnel it is removed, and
/// hands on the bytes it holds past the response.
///
/// A part handed on can start the next request on this connection, close the connection or remove
/// this handler before `parse` returns; none of that touches the parser while it runs: requests
/// are listed here, a close seen mid-parse ends nothing more, and a removal waits for the parse.
public final class UpstreamResponseParserHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private var parser = HTTP1ResponseParser()
    /// The requests sent and not yet answered, oldest first.
    private var requests = CircularBuffer<HTTP1ResponseParser.RequestKind>(initialCapacity: 2)
    /// What is held between reads, and a removal that waits for a parse.
    private var input = ParserInput()
    private let connection: UpstreamConnectionHandler

    public init(connection: UpstreamConnectionHandler) {
        self.connection = connection
    }

    /// The connection handler reports each request as it encodes it: a response's framing depends
    /// on its request's method (HEAD, CONNECT).
    func expectResponse(to method: HTTPMethod) {
        requests.append(HTTP1ResponseParser.RequestKind(method))
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = input.beginParse(unwrapInboundIn(data))
        do {
            try parser.parse(&bytes, request: { requests.first ?? .other }, emit: deliver)
        } catch {
            _ = input.endParse(unparsed: nil, context: context)
            context.fireErrorCaught(error)
            return
        }
        _ = input.endParse(unparsed: bytes, context: context)
    }

    /// Told to the connection handler directly, and no further: nothing after it uses it.
    public func channelReadComplete(context: ChannelHandlerContext) {
        connection.readComplete()
    }

    private func deliver(_ part: HTTP1ResponseParser.Part) {
        if case .end = part, !requests.isEmpty { requests.removeFirst() }
        connection.receive(part)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        // A body read until the close ends with it. A close that a part handed on set off (while
        // parsing) is this proxy's own: that response is abandoned, not complete.
        if !input.isParsing { _ = parser.inputClosed(emit: deliver) }
        context.fireChannelInactive()
    }

    public func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        input.remove(context: context, removalToken: removalToken)
    }
}
