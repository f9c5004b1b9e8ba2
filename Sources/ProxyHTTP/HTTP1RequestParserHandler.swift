import NIOCore
import NIOHTTP1
import ProxyCore

/// Reads a downstream HTTP/1.x connection's bytes with `HTTP1RequestParser` and hands each part
/// straight to the connection manager behind it: no pipeline hop, `NIOAny` box or cast per part,
/// and no callbacks out of a C parser. When the connection becomes a tunnel it is removed, and
/// hands on the bytes it holds past the upgrade request.
///
/// A part handed on can close the connection, end the upgrade wait or remove this handler before
/// `parse` returns; none of that touches the parser while it runs: a close seen mid-parse hands on
/// nothing more, and a resumption or removal waits for the parse to return.
final class HTTP1RequestParserHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var parser: HTTP1RequestParser
    /// What is held between reads (a head cut by a read, what follows an upgrade request), and a
    /// removal that waits for a parse.
    private var input = ParserInput()
    private var closed = false
    private var resumePending = false
    private let manager: HTTPConnectionManager
    /// `request_headers_timeout` is configured: the manager hears of every read, as a head's first
    /// bytes start that timeout.
    private let reportsReads: Bool
    private var context: ChannelHandlerContext?

    init(manager: HTTPConnectionManager, reportsReads: Bool, maximumHeadSize: Int = HTTP1Syntax.maximumHeadSize) {
        parser = HTTP1RequestParser(maximumHeadSize: maximumHeadSize)
        self.manager = manager
        self.reportsReads = reportsReads
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        manager.requestParser = self
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if reportsReads { manager.requestBytesArrived() }
        parse(unwrapInboundIn(data), context: context)
    }

    private func parse(_ read: ByteBuffer, context: ChannelHandlerContext) {
        var bytes = input.beginParse(read)
        do {
            try parser.parse(&bytes, emit: deliver)
        } catch {
            if !closed { manager.requestParseFailed(error) }
            _ = input.endParse(unparsed: nil, context: context)
            return
        }
        if input.endParse(unparsed: bytes, context: context) { return }
        if resumePending {
            resumePending = false
            resumeAfterUpgrade(context: context)
        } else if parser.isWaitingForUpgrade, input.held != nil {
            // Bytes past an upgrade request wait for its outcome; no more are read meanwhile.
            manager.pauseReading()
        }
    }

    private func deliver(_ part: HTTP1RequestParser.Part) {
        guard !closed else { return }
        manager.receive(part)
    }

    /// Goes no further: only the connection manager follows, and it has no use for it (its writes
    /// flush as they go). Passing it on cost two pipeline hops a read. A tunnel's end, added when
    /// this handler leaves, is reached directly.
    func channelReadComplete(context: ChannelHandlerContext) {}

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        context.fireChannelInactive()
    }

    /// The upgrade the last request asked for did not happen (`Upgrade: h2c`, or an upstream that
    /// did not answer 101): the bytes after it are parsed as HTTP/1.1, as Envoy's connection goes on.
    func resumeAfterUpgrade() {
        guard let context else { return }
        if input.isParsing {
            resumePending = true
        } else {
            resumeAfterUpgrade(context: context)
        }
    }

    private func resumeAfterUpgrade(context: ChannelHandlerContext) {
        guard parser.isWaitingForUpgrade else { return }
        parser.resumeAfterUpgrade()
        if input.held != nil { parse(ByteBuffer(), context: context) }
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        input.remove(context: context, removalToken: removalToken)
    }
}
