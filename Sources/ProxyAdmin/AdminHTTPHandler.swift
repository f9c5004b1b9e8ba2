import NIOCore
import NIOHTTP1
import ProxyCore
import ProxyHTTP

/// Serves the admin endpoints over HTTP/1.1 (behind NIO's server pipeline), with `http.admin.*` stats.
public final class AdminHTTPHandler: ChannelInboundHandler, @unchecked Sendable {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundOut = HTTPServerResponsePart

    private let endpoints: AdminEndpoints
    private let stats: ConnectionManagerStats
    private var request: HTTPRequestHead?
    private var started = NIODeadline.now()
    private var dates = HTTPDateCache()

    public init(endpoints: AdminEndpoints, stats: ConnectionManagerStats) {
        self.endpoints = endpoints
        self.stats = stats
    }

    public func channelActive(context: ChannelHandlerContext) {
        stats.downstreamCxTotal.increment()
        stats.downstreamCxActive.increment()
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        stats.downstreamCxActive.decrement()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            request = head
            started = .now()
            stats.downstreamRqTotal.increment()
        case .body:
            break
        case .end:
            guard let head = request else { return }
            request = nil
            let response = endpoints.handle(AdminRequest(method: head.method.rawValue, uri: head.uri))
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: response.contentType)
            headers.add(name: "cache-control", value: "no-cache, max-age=0")
            headers.add(name: "x-content-type-options", value: "nosniff")
            headers.add(name: "date", value: dates.current())
            headers.add(name: "server", value: "envoy")
            headers.add(name: "content-length", value: String(response.body.utf8.count))
            if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
            let status = HTTPResponseStatus(statusCode: response.status)
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))),
                          promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: response.body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { [context] _ in
                if !keepAlive { context.close(promise: nil) }
            }
            stats.recordResponse(status: response.status)
            stats.downstreamRqTime.record(milliseconds: Double((NIODeadline.now() - started).nanoseconds) / 1_000_000)
        }
    }
}
