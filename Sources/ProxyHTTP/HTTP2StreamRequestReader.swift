import NIOCore
import NIOHTTP2

/// A downstream HTTP/2 stream channel's request reader: the stream's frames through
/// `HTTP2RequestTranslation` to its connection manager; a malformed request is refused as
/// `malformed` says. Streams have channels only with `allow_connect`, so the reader sits behind
/// `HTTP2ExtendedConnect`, which has checked the request's header block.
final class HTTP2StreamRequestReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let manager: HTTPConnectionManager
    private let malformed: HTTP2MalformedRequestPolicy
    private var translation: HTTP2RequestTranslation
    private var refused = false

    init(manager: HTTPConnectionManager, malformed: HTTP2MalformedRequestPolicy) {
        self.manager = manager
        self.malformed = malformed
        translation = HTTP2RequestTranslation(validatesRequestHead: false,
                                              extendedConnect: malformed.extendedConnect)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused, !malformed.connectionClosing else { return }
        do {
            try translation.receive(unwrapInboundIn(data), manager: manager)
        } catch {
            refused = true
            malformed.refuse(context: context, error)
        }
    }
}
