import NIOCore
import NIOHTTP1

/// Serves ControlPlaneAdmin over HTTP/1.1.
public final class ControlPlaneHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    private let admin: ControlPlaneAdmin
    /// Loop-confined, like every handler's state.
    private var head: HTTPRequestHead?

    public init(admin: ControlPlaneAdmin) {
        self.admin = admin
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            head = request
        case .body:
            break
        case .end:
            guard let request = head else { return }
            let answer = admin.handle(method: request.method.rawValue, uri: request.uri)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: answer.contentType)
            headers.add(name: "content-length", value: String(answer.body.utf8.count))
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: request.version,
                                                                 status: HTTPResponseStatus(statusCode: answer.status),
                                                                 headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer.body)))), promise: nil)
            let keepAlive = request.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { [context] _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }
}
