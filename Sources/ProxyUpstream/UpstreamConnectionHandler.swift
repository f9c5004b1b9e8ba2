import NIOCore
import NIOHTTP1

/// Receives one upstream response at a time on behalf of the request that holds the connection.
public protocol UpstreamResponseDelegate: AnyObject {
    func upstreamResponseHead(_ head: HTTPResponseHead)
    func upstreamResponseBody(_ body: ByteBuffer)
    func upstreamResponseEnd(_ trailers: HTTPHeaders?)
    /// The end of one batch of reads: the moment to flush what was forwarded downstream.
    func upstreamReadComplete()
    /// The connection closed or failed before the response ended.
    func upstreamConnectionLost()
    /// The response broke a rule of the codec (more than `max_headers_count` headers); the
    /// connection is closed and no more of it arrives.
    func upstreamProtocolError()
    /// The upstream socket can take more (true) or is backed up (false); drives request backpressure.
    func upstreamWritabilityChanged(_ writable: Bool)
}

/// Encodes request parts into the bytes of an HTTP/1.x connection, on the connection's own pipeline (the
/// proxy's encoder, in ProxyHTTP, conforms).
public protocol UpstreamRequestEncoder {
    /// Encodes one part; false when it may not be sent (a header that would split the message).
    mutating func encode(_ part: HTTPClientRequestPart, context: ChannelHandlerContext) -> Bool
    /// Hands what is encoded to the channel, without a flush.
    mutating func emit(context: ChannelHandlerContext)
    mutating func flush(context: ChannelHandlerContext)
}

/// The last handler of an upstream HTTP/1.1 connection: hands response parts to the current
/// delegate and holds reads back while the downstream cannot take more.
public final class UpstreamConnectionHandler: ChannelDuplexHandler, @unchecked Sendable {
    public typealias InboundIn = HTTPClientResponsePart
    public typealias OutboundIn = HTTPClientRequestPart
    public typealias OutboundOut = HTTPClientRequestPart

    /// Loop-confined: set by the pool when a request takes the connection, cleared on release, on close and
    /// when the pipeline lets go of this handler. Held strongly: a weak reference to each request's stream
    /// cost a side-table allocation per request and an atomic load per response part.
    public var delegate: (any UpstreamResponseDelegate)?
    /// Called once when the connection closes, so the pool can forget it.
    var onClose: (() -> Void)?
    /// Whether the current response leaves the connection reusable, as its head said.
    public private(set) var responseKeepsConnection = true

    /// What a head from NIO's codec says of the connection (our HTTP/1 parser works it out as it
    /// reads): an HTTP/2 stream ends with its response and its connection stays.
    public static func keepsConnection(after head: HTTPResponseHead) -> Bool {
        head.version.major >= 2 || head.isKeepAlive
    }
    private var readsPaused = false
    private var pendingRead = false
    /// Set once a response broke a codec rule: nothing more is read from this connection.
    private var failed = false
    /// The cluster's `common_http_protocol_options.max_headers_count` for responses.
    private let maxResponseHeaders: Int
    public private(set) var context: ChannelHandlerContext?
    /// Set on an HTTP/1.1 connection: requests are encoded here, not by an encoder handler (a pipeline hop,
    /// an `NIOAny` box and a cast for every part), and the response parser learns each request's method
    /// (a response to HEAD has no body) from this handler. The parser holds this handler too: the two
    /// let go of each other when the pipeline removes this one.
    private var encoder: (any UpstreamRequestEncoder)?
    private var responseParser: UpstreamResponseParserHandler?

    public init(maxResponseHeaders: Int = 100) {
        self.maxResponseHeaders = maxResponseHeaders
    }

    public func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// Lets go of the context, which holds this handler: the two would otherwise keep each other.
    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        delegate = nil
        responseParser = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            head.headers = head.headers.withLowercasedNames()
            receive(.head(head, keepsConnection: Self.keepsConnection(after: head)))
        case .body(let body): receive(.body(body))
        case .end(let trailers): receive(.end(trailers))
        }
    }

    /// One part of the current response, from NIO's codec (HTTP/2 streams) through `channelRead`, or
    /// straight from the HTTP/1.x connection's parser.
    func receive(_ part: HTTP1ResponseParser.Part) {
        guard !failed, let context else { return }
        switch part {
        case .head(let head, let keepsConnection):
            responseKeepsConnection = keepsConnection
            if head.headers.count > maxResponseHeaders {
                failed = true
                let delegate = self.delegate
                self.delegate = nil
                delegate?.upstreamProtocolError()
                context.close(promise: nil)
                return
            }
            // 1xx interim responses (other than 101) are not forwarded: the final response follows.
            if head.status.code >= 100, head.status.code < 200, head.status.code != 101 { return }
            delegate?.upstreamResponseHead(head)
        case .body(let body):
            delegate?.upstreamResponseBody(body)
        case .end(let trailers):
            delegate?.upstreamResponseEnd(trailers)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        readComplete()
        context.fireChannelReadComplete()
    }

    /// The end of a read batch: from NIO's codec (HTTP/2 streams) through `channelReadComplete`, or
    /// straight from the HTTP/1.x connection's parser.
    func readComplete() {
        delegate?.upstreamReadComplete()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        let delegate = self.delegate
        self.delegate = nil
        onClose?()
        onClose = nil
        delegate?.upstreamConnectionLost()
        context.fireChannelInactive()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Decoding errors or resets: the connection is unusable; channelInactive reports it.
        context.close(promise: nil)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.upstreamWritabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if readsPaused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    /// Encode requests with `encoder`, telling `responseParser` what each one is.
    public func encodeRequests(with encoder: any UpstreamRequestEncoder, for responseParser: UpstreamResponseParserHandler) {
        self.encoder = encoder
        self.responseParser = responseParser
    }

    /// Writes a request part from the connection's own loop, without going through the Channel API.
    public func write(_ part: HTTPClientRequestPart) {
        guard let context else { return }
        guard encoder != nil else { return context.write(wrapOutboundOut(part), promise: nil) }
        if case .head(let head) = part { responseParser?.expectResponse(to: head.method) }
        if !encoder!.encode(part, context: context) {
            errorCaught(context: context, error: HTTPParserError.invalidHeaderToken)
        }
    }

    public func flush() {
        guard let context else { return }
        if encoder != nil {
            encoder!.flush(context: context)
        } else {
            context.flush()
        }
    }

    /// The connection becomes a byte tunnel: what is encoded goes out ahead of the tunnel's bytes.
    public func handOverEncodedBytes() {
        guard let context, encoder != nil else { return }
        encoder!.emit(context: context)
    }

    /// Stops reading the upstream socket until `resumeReading` (the downstream is backed up).
    public func pauseReading() { readsPaused = true }

    public func resumeReading() {
        guard readsPaused else { return }
        readsPaused = false
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }
}
