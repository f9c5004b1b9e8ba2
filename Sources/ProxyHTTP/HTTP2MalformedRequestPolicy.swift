import NIOCore
import NIOHTTP2
import ProxyCore

/// What a malformed downstream HTTP/2 request does, as Envoy's `stream_error_on_invalid_http_message`
/// says: by default the whole connection closes, as Envoy 1.40 closes it, and no later request of
/// that connection is served (not even one that came in the same read); with the option set only
/// the stream is reset (PROTOCOL_ERROR) and the connection serves the rest. Either way
/// `http2.rx_messaging_error` counts it. One per connection, used on its event loop only.
final class HTTP2MalformedRequestPolicy: @unchecked Sendable {
    let streamError: Bool
    /// The connection offered extended CONNECT (RFC 8441): `:protocol` is allowed.
    let extendedConnect: Bool
    private let messagingErrors: Counter
    /// A malformed request or a protocol error is closing the connection: its streams read nothing more.
    private(set) var connectionClosing = false

    init(streamError: Bool, extendedConnect: Bool, messagingErrors: Counter) {
        self.streamError = streamError
        self.extendedConnect = extendedConnect
        self.messagingErrors = messagingErrors
    }

    /// The connection is closing for a protocol error NIO found: its streams read nothing more.
    func connectionFailed() {
        connectionClosing = true
    }

    /// Refuses the request on `context`'s stream (a stream channel, with `allow_connect`). Both the
    /// reset and the close wait until after the read that brought the request, which is still
    /// setting up the stream's channel.
    func refuse(context: ChannelHandlerContext, _ error: any Error) {
        guard refusalResetsOnlyTheStream() else {
            let connection = context.channel.parent
            context.eventLoop.assumeIsolated().execute { connection?.close(promise: nil) }
            return
        }
        context.fireErrorCaught(error)
        context.eventLoop.assumeIsolated().execute {
            context.writeAndFlush(NIOAny(HTTP2Frame.FramePayload.rstStream(.protocolError)), promise: nil)
        }
    }

    /// Counts a malformed request; false when the connection is to close for it (its streams then
    /// read nothing more), true when only its stream is reset.
    func refusalResetsOnlyTheStream() -> Bool {
        messagingErrors.increment()
        if !streamError { connectionClosing = true }
        return streamError
    }
}
