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
    /// Bytes read but not parsed yet (a head or chunk line cut by the read, or what follows an upgrade request).
    private var held: ByteBuffer?
    private var parsing = false
    private var closed = false
    private var resumePending = false
    /// A removal asked for while a parse ran: done once it returns.
    private var pendingRemoval: ChannelHandlerContext.RemovalToken?
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
        var bytes = unwrapInboundIn(data)
        if reportsReads { manager.requestBytesArrived() }
        if var earlier = held {
            held = nil
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        parse(&bytes, context: context)
    }

    private func parse(_ bytes: inout ByteBuffer, context: ChannelHandlerContext) {
        parsing = true
        do {
            try parser.parse(&bytes, emit: deliver)
        } catch {
            parsing = false
            held = nil
            if !closed { manager.requestParseFailed(error) }
            return
        }
        parsing = false
        if bytes.readableBytes > 0 { held = bytes }
        if let token = pendingRemoval {
            pendingRemoval = nil
            leave(context: context, removalToken: token)
        } else if resumePending {
            resumePending = false
            resumeAfterUpgrade(context: context)
        } else if parser.isWaitingForUpgrade, held != nil {
            // Bytes past an upgrade request wait for its outcome; no more are read meanwhile.
            manager.pauseReading()
        }
    }

    private func deliver(_ part: HTTP1RequestParser.Part) {
        guard !closed else { return }
        manager.receive(part)
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        context.fireChannelInactive()
    }

    /// The upgrade the last request asked for did not happen (`Upgrade: h2c`, or an upstream that
    /// did not answer 101): the bytes after it are parsed as HTTP/1.1, as Envoy's connection goes on.
    func resumeAfterUpgrade() {
        guard let context else { return }
        if parsing {
            resumePending = true
        } else {
            resumeAfterUpgrade(context: context)
        }
    }

    private func resumeAfterUpgrade(context: ChannelHandlerContext) {
        guard parser.isWaitingForUpgrade else { return }
        parser.resumeAfterUpgrade()
        if var bytes = held {
            held = nil
            parse(&bytes, context: context)
        }
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if parsing {
            pendingRemoval = removalToken
        } else {
            leave(context: context, removalToken: removalToken)
        }
    }

    /// Hands on what is held (the tunnel's first bytes) to the handler after this one, and leaves.
    private func leave(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let held, held.readableBytes > 0 {
            self.held = nil
            context.fireChannelRead(wrapInboundOut(held))
        }
        context.leavePipeline(removalToken: removalToken)
    }
}
