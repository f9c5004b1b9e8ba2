import NIOCore
import NIOHTTP1
import ProxyAccessLog
import ProxyCore

/// The connection manager of one downstream HTTP/1.1 connection, or of one HTTP/2 stream: the last
/// handler of the pipeline, after the HTTP/1.1 request parser or the stream channel's request
/// reader; or, for an HTTP/2 stream without a channel of its own, no handler at all, reading from
/// and writing to the stream (`HTTP2DownstreamStream`). It serves one request at a time; pipelined
/// HTTP/1.1 requests wait in a short queue. (NIO's pipelining handler would do that by withholding
/// reads, which costs two epoll_ctl calls per request: PERFORMANCE.md counts system calls.)
public final class HTTPConnectionManager: ChannelDuplexHandler, DrainableConnection, @unchecked Sendable {
    /// What the channel under this manager is.
    public enum Transport: Sendable {
        /// A whole HTTP/1.1 connection: this manager counts it and drains it.
        case http1Connection
        /// One stream of an HTTP/2 connection; the connection is counted and drained by
        /// `HTTP2DownstreamConnection`, and closing this channel resets only the stream.
        case http2Stream
    }

    public typealias InboundIn = HTTPServerRequestPart
    public typealias OutboundIn = HTTPServerResponsePart
    public typealias OutboundOut = HTTPServerResponsePart

    private let configHolder: SnapshotHolder<ConnectionManagerConfig>
    private let tracker: ConnectionTracker?
    let transport: Transport
    /// `%CONNECTION_ID%`: the downstream connection's (an HTTP/2 stream shares its connection's).
    let connectionID: UInt64
    /// What the connection's TLS handshake established; nil for plaintext.
    let tls: DownstreamTLSInfo?
    private var activated = false
    private var openedAt = NIODeadline.now()
    /// Set when the listener drains this connection: the next response closes it.
    private var drainRequested = false
    private var context: ChannelHandlerContext?
    /// The HTTP/2 stream this manager serves when the stream has no channel (and so no `context`).
    private var directStream: HTTP2DownstreamStream?
    /// Inside `writeEnd` on a `directStream`: the stream may close cleanly before it returns.
    private var writingEnd = false
    private var stream: ActiveStream?
    /// Whether the current stream has received its whole request.
    private var requestEnded = false
    /// Pipelined request parts that arrived while the current stream still owed its response.
    /// An array, where NIO's ring buffer allocated room for 16 parts as it was made: each HTTP/2
    /// stream has a manager of its own, and its one request never queues.
    private var queued: [HTTP1RequestParser.Part] = []
    private var draining = false
    private static let maxQueuedParts = 64
    private var connectionStats: ConnectionManagerStats?
    /// The filter chain this connection was accepted under.
    private var filterChainGeneration = 0
    var requestIDs = RequestIDGenerator()
    var dates = HTTPDateCache()
    private(set) var readsPaused = false
    private var pendingRead = false
    /// A response head (not 1xx) has gone out and its end has not: a parse error then gets no 400.
    private var responseInProgress = false
    /// A pipelined request could not be parsed: its answer, due once the requests before it are answered.
    private var failedRequest: HTTPResponseStatus?
    /// A response said `connection: close`: the connection ends once it is written.
    private var closingAfterResponse = false
    /// The connection became a byte tunnel (an upgraded WebSocket); this manager only watches it close.
    private var tunneled = false
    /// On an HTTP/1.1 connection the manager encodes its responses itself, into one buffer per flush:
    /// an encoder handler of its own cost a pipeline hop and a type cast for every part of every
    /// response. Nil where the channel takes response parts (unit tests) or frames.
    private var encoder: HTTP1OutboundBuffer?
    /// On an HTTP/2 stream the manager writes its responses as the stream's frames, for the same reason.
    private var framer: HTTP2ResponseFramer?
    /// The HTTP/1.1 connection's request parser, in front of this manager; it hands parts to `receive`.
    weak var requestParser: HTTP1RequestParserHandler?

    // Timeouts: one lazily re-armed check per connection (or HTTP/2 stream) serves them all, so a
    // keep-alive request schedules no timer of its own; see `checkTimeouts`.
    private var timeouts = ConnectionTimeouts()
    private var timeoutCheck: Scheduled<Void>?
    private var timeoutCheckAt = NIODeadline.distantFuture
    /// An HTTP/2 stream's check is its connection's, shared by all its streams.
    private let sharedTimeoutCheck: SharedTimeoutCheck?
    /// This manager's place among the shared check's members, while it is one.
    var sharedTimeoutCheckSlot: Int?
    /// Since when an HTTP/1.1 connection has had no stream (`idle_timeout`); nil while it has one.
    private var idleSince: NIODeadline?
    /// When the first bytes of a request whose head has not been read yet arrived (`request_headers_timeout`).
    private var headStartedAt: NIODeadline?
    private var servedRequest = false
    private var maxDurationReached = false

    /// `encodesResponses`: write HTTP/1.x bytes rather than response parts (the channel has no encoder).
    public convenience init(config: SnapshotHolder<ConnectionManagerConfig>, tracker: ConnectionTracker? = nil,
                            transport: Transport = .http1Connection, connectionID: UInt64 = ConnectionIDs.next(),
                            tls: DownstreamTLSInfo? = nil, encodesResponses: Bool = false) {
        self.init(config: config, tracker: tracker, transport: transport, connectionID: connectionID, tls: tls,
                  sharedTimeoutCheck: nil)
        if encodesResponses { encoder = HTTP1OutboundBuffer() }
    }

    /// `responseIndexing`, the HTTP/2 connection's: on its stream, write frames rather than response parts.
    init(config: SnapshotHolder<ConnectionManagerConfig>, tracker: ConnectionTracker?, transport: Transport,
         connectionID: UInt64, tls: DownstreamTLSInfo?, sharedTimeoutCheck: SharedTimeoutCheck?,
         responseIndexing: HTTP2ResponseHeaderIndexing? = nil) {
        if let responseIndexing { framer = HTTP2ResponseFramer(indexing: responseIndexing) }
        self.sharedTimeoutCheck = sharedTimeoutCheck
        self.tls = tls
        self.configHolder = config
        self.tracker = tracker
        self.transport = transport
        self.connectionID = connectionID
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // Added by the codec detector after the connection became active.
        if context.channel.isActive { activate(loop: context.eventLoop) }
    }

    /// Serves `stream`, an HTTP/2 stream without a channel of its own; it hands request parts to
    /// `receive`, and `downstreamClosed` when it is gone.
    func attach(_ stream: HTTP2DownstreamStream) {
        directStream = stream
        activate(loop: stream.eventLoop)
    }

    /// The context keeps this handler alive and this handler kept the context: without letting go
    /// here every connection (and on HTTP/2 every stream, with its channel and pipeline) stayed in memory.
    public func handlerRemoved(context: ChannelHandlerContext) {
        framer?.fail()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        activate(loop: context.eventLoop)
        context.fireChannelActive()
    }

    private func activate(loop: any EventLoop) {
        guard !activated else { return }
        activated = true
        let config = configHolder.load()
        filterChainGeneration = config.filterChainGeneration
        timeouts = config.timeouts
        openedAt = loop.now
        if let interval = timeouts.checkInterval { ensureTimeoutCheck(by: openedAt + interval) }
        guard transport == .http1Connection else { return }
        idleSince = openedAt
        let stats = config.stats
        connectionStats = stats
        tracker?.register(self, loop: loop)
        stats.downstreamCxTotal.increment()
        stats.downstreamCxHttp1Total.increment()
        stats.downstreamCxActive.increment()
        stats.downstreamCxHttp1Active.increment()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        downstreamClosed(now: context.eventLoop.now)
        context.fireChannelInactive()
    }

    /// The connection, or the HTTP/2 stream, is gone: a request under way is reset.
    func downstreamClosed(now: NIODeadline) {
        if tunneled {
            tunneled = false
            configHolder.load().stats.downstreamCxUpgradesActive.decrement()
        }
        tracker?.unregister(self)
        stopTimeoutChecks()
        if let stats = connectionStats {
            stats.downstreamCxActive.decrement()
            stats.downstreamCxHttp1Active.decrement()
            stats.downstreamCxDestroy.increment()
            stats.downstreamCxLengthMs.record(milliseconds: Double((now - openedAt).nanoseconds) / 1_000_000)
            connectionStats = nil
        }
        stream?.downstreamReset()
        stream = nil
        if directStream != nil {
            framer?.fail()
            // The stream held this manager and this manager the stream.
            directStream = nil
        }
    }

    /// The HTTP/2 stream (without a channel) closed cleanly, both ends done. NIO says so while it
    /// writes the response's last frame, inside `writeEnd`, so only what cannot reach back into the
    /// response is done now; the active stream finishes as it would have (its access log still
    /// reads the connection's addresses through the stream), and `streamFinished` lets go of it.
    func downstreamEnded() {
        stopTimeoutChecks()
        guard stream != nil, let loop = directStream?.eventLoop else {
            directStream = nil
            return
        }
        if writingEnd, requestEnded { return }
        // A request whose end the stream still held (its reads paused) is reset, as closing its
        // stream channel reset it.
        loop.assumeIsolated().execute { [self] in
            stream?.downstreamReset()
            stream = nil
            directStream = nil
        }
    }

    private func stopTimeoutChecks() {
        timeoutCheck?.cancel()
        timeoutCheck = nil
        sharedTimeoutCheck?.remove(self)
        timeoutCheckAt = .distantFuture
    }

    /// Request parts from a codec in the pipeline (unit tests').
    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(var head):
            head.headers = head.headers.withLowercasedNames()
            receive(.head(head, keepAlive: head.isKeepAlive))
        case .body(let body):
            receive(.body(body))
        case .end(let trailers):
            receive(.end(trailers))
        }
    }

    /// A request part, from the HTTP/1.1 request parser directly or from `channelRead`.
    func receive(_ part: HTTP1RequestParser.Part) {
        guard let loop = eventLoop else { return }
        if waitingForResponse || !queued.isEmpty {
            queued.append(part)
            if queued.count >= Self.maxQueuedParts { pauseReading() }
            return
        }
        deliver(part, loop: loop)
    }

    private var eventLoop: (any EventLoop)? { context?.eventLoop ?? directStream?.eventLoop }

    private var waitingForResponse: Bool { stream != nil && requestEnded }

    private func deliver(_ part: HTTP1RequestParser.Part, loop: any EventLoop) {
        switch part {
        case .head(let head, let keepAlive):
            requestEnded = false
            idleSince = nil
            headStartedAt = nil
            servedRequest = true
            let config = configHolder.load()
            let stream = ActiveStream(manager: self, config: config, head: head, keepAlive: keepAlive, loop: loop,
                                      draining: drainRequested || config.filterChainGeneration != filterChainGeneration)
            self.stream = stream
            stream.start()
        case .body(let body):
            stream?.requestBody(body)
        case .end(let trailers):
            requestEnded = true
            stream?.requestEnd(trailers)
        }
    }

    /// Starts the queued pipelined requests, in order, until one has to wait for its response.
    private func drainQueue() {
        guard !draining, let loop = eventLoop else { return }
        draining = true
        defer { draining = false }
        while !waitingForResponse, !queued.isEmpty {
            deliver(queued.removeFirst(), loop: loop)
        }
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        writabilityChanged(context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    /// The connection's writability, or the HTTP/2 stream's, changed.
    func writabilityChanged(_ writable: Bool) {
        stream?.downstreamWritabilityChanged(writable)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is HTTPParserError { requestParseFailed(error) }
        context.fireErrorCaught(error)
    }

    /// As Envoy: a request that cannot be parsed gets a 400 (a head too large, 431; a transfer
    /// coding other than chunked, 501) and the connection closes. A pipelined request that cannot be
    /// parsed is answered once the requests before it have been (Envoy parses the next request only
    /// then); an error in the request under way while its response is going out only closes.
    func requestParseFailed(_ error: any Error) {
        connectionStats?.downstreamCxProtocolError.increment()
        guard transport == .http1Connection, context != nil else { return }
        let status: HTTPResponseStatus = switch error as? HTTP1ParseError {
        case HTTP1RequestParser.headersTooLarge?: .requestHeaderFieldsTooLarge
        case HTTP1RequestParser.unsupportedTransferEncoding?: .notImplemented
        default: .badRequest
        }
        failedRequest = status
        if waitingForResponse || !queued.isEmpty {
            pauseReading()
            return
        }
        answerFailedRequest()
    }

    public func read(context: ChannelHandlerContext) {
        if readsPaused {
            pendingRead = true
        } else {
            context.read()
        }
    }

    // MARK: called by the active stream

    var isWritable: Bool { directStream?.isWritable ?? context?.channel.isWritable ?? false }

    func write(_ part: HTTPServerResponsePart, flush: Bool) {
        if let directStream {
            framer!.write(part, to: directStream, promise: nil)
            if flush { sendFlush(directStream) }
            return
        }
        guard let context else { return }
        if case .head(let head) = part, head.status.code >= 200 || head.status == .switchingProtocols {
            responseInProgress = true
        }
        send(part, context: context, promise: nil)
        if flush { sendFlush(context: context) }
    }

    func flush() {
        if let directStream { return sendFlush(directStream) }
        guard let context else { return }
        sendFlush(context: context)
    }

    private func sendFlush(_ directStream: HTTP2DownstreamStream) {
        framer!.release(to: directStream)
        directStream.flush()
    }

    private func send(_ part: HTTPServerResponsePart, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if framer != nil { return framer!.write(part, to: context, promise: promise) }
        guard encoder != nil else { return context.write(wrapOutboundOut(part), promise: promise) }
        if !encoder!.write(part, context: context, promise: promise) {
            // A header that may not be sent: handled as the encoder handler's error was.
            errorCaught(context: context, error: HTTPParserError.invalidHeaderToken)
        }
    }

    private func sendFlush(context: ChannelHandlerContext) {
        framer?.release(to: context)
        if encoder != nil {
            encoder!.flush(context: context)
        } else {
            context.flush()
        }
    }

    /// Sends the last part of a response and flushes; closes the connection once it is written.
    private func sendLastAndClose(_ part: HTTPServerResponsePart, context: ChannelHandlerContext) {
        let written = context.eventLoop.makePromise(of: Void.self)
        send(part, context: context, promise: written)
        sendFlush(context: context)
        written.futureResult.assumeIsolated().whenComplete { [context] _ in context.close(promise: nil) }
    }

    /// The connection becomes a byte tunnel: what is encoded so far goes out ahead of the tunnel's bytes.
    func handOverEncodedBytes() {
        guard let context, encoder != nil else { return }
        encoder!.emit(context: context, promise: nil)
    }

    /// Writes the final part; closes the connection after it when keep-alive is off.
    func writeEnd(_ trailers: HTTPHeaders?, close: Bool) {
        if let directStream {
            // NIO closes the stream as the last frame goes out: when it is written (HEADERS) or flushed (DATA).
            writingEnd = true
            framer!.write(.end(trailers), to: directStream, promise: nil)
            sendFlush(directStream)
            writingEnd = false
            return
        }
        guard let context else { return }
        responseInProgress = false
        if close, transport == .http1Connection {
            closingAfterResponse = true
            sendLastAndClose(.end(trailers), context: context)
        } else {
            send(.end(trailers), context: context, promise: nil)
            sendFlush(context: context)
        }
    }

    var isHTTP2: Bool { transport == .http2Stream }

    /// Drain: the next response says `connection: close`; if the connection is still open after
    /// `drainTime` (an idle keep-alive client), it is closed then.
    public func startDraining(closeAfter drainTime: TimeAmount) {
        guard let context, !drainRequested else { return }
        drainRequested = true
        context.eventLoop.assumeIsolated().scheduleTask(in: drainTime) { [weak self] in
            guard let self, self.stream == nil else { return }
            self.context?.close(promise: nil)
        }
    }

    func closeConnection() {
        if let directStream {
            framer!.release(to: directStream)
            return directStream.reset(.cancel)
        }
        guard let context else { return }
        // A stream's held head goes out before its reset, as it would have with the next flush.
        framer?.release(to: context)
        context.close(promise: nil)
    }

    /// The downstream connection's channel (an HTTP/2 stream's own, when it has one).
    var channel: (any Channel)? { context?.channel ?? directStream?.connectionChannel }

    /// The stream's upgrade succeeded and the tunnel takes the connection over.
    func tunnelEstablished(_ finished: ActiveStream) {
        if stream === finished { stream = nil }
        tunneled = true
        queued.removeAll()
        let stats = configHolder.load().stats
        stats.downstreamCxUpgradesTotal.increment()
        stats.downstreamCxUpgradesActive.increment()
        resumeReading()
    }

    /// A request asked for an upgrade that did not happen: the parser, which stopped after it,
    /// reads on as HTTP/1.1.
    func resumeAfterUpgrade() {
        requestParser?.resumeAfterUpgrade()
    }

    /// The stream is done in both directions: the next pipelined request may start.
    func streamFinished(_ finished: ActiveStream) {
        if stream === finished { stream = nil }
        drainQueue()
        if failedRequest != nil, queued.isEmpty, !waitingForResponse {
            answerFailedRequest()
            return
        }
        if stream == nil, queued.isEmpty, let loop = eventLoop { idleSince = loop.now }
        // A stream that closed while its response was being finished (`downstreamEnded`).
        if directStream?.isOpen == false { directStream = nil }
        if queued.count < Self.maxQueuedParts { resumeReading() }
    }

    /// The requests before the one that could not be parsed are done (or the one under way is that
    /// request, cut short): its answer goes out, unless the last response closes the connection anyway.
    private func answerFailedRequest() {
        guard let status = failedRequest, let context else { return }
        failedRequest = nil
        if closingAfterResponse { return }
        if responseInProgress { return context.close(promise: nil) }
        replyAndClose(status, body: status.reasonPhrase, serverName: configHolder.load().serverName, context: context)
    }

    func pauseReading() { readsPaused = true }

    func resumeReading() {
        guard readsPaused else { return }
        readsPaused = false
        if let directStream { return directStream.deliverHeld() }
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }
}

// MARK: timeouts

extension HTTPConnectionManager {
    /// Bytes of a request arrived before its head was complete (the request parser reports every read).
    func requestBytesArrived() {
        guard stream == nil, queued.isEmpty, headStartedAt == nil, let limit = timeouts.requestHeaders,
              let now = context?.eventLoop.now else { return }
        headStartedAt = now
        ensureTimeoutCheck(by: now + limit)
    }

    /// Makes sure the timeout check runs no later than `deadline` (a stream whose route has a shorter
    /// idle timeout than the connection manager's asks for this).
    func ensureTimeoutCheck(by deadline: NIODeadline) {
        guard deadline < timeoutCheckAt, let loop = eventLoop else { return }
        if let sharedTimeoutCheck {
            guard directStream?.isOpen ?? context?.channel.isActive ?? false else { return }
            timeoutCheckAt = deadline
            sharedTimeoutCheck.register(self, by: deadline)
            return
        }
        timeoutCheck?.cancel()
        timeoutCheckAt = deadline
        timeoutCheck = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            self?.checkTimeouts()
        }
    }

    /// The connection's shared check woke up: act if this stream's deadline has come, else wait on.
    func sharedTimeoutCheckFired(now: NIODeadline) {
        if timeoutCheckAt <= now {
            checkTimeouts()
        } else if timeoutCheckAt != .distantFuture {
            sharedTimeoutCheck?.register(self, by: timeoutCheckAt)
        }
    }

    /// Acts on whatever timeout is due and sleeps until the next deadline, or for the shortest
    /// configured timeout: no deadline that activity sets later can come before that, so activity
    /// only has to record when it happened.
    private func checkTimeouts() {
        timeoutCheck = nil
        timeoutCheckAt = .distantFuture
        guard let now = eventLoop?.now, !tunneled else { return }
        var next = timeouts.checkInterval.map { now + $0 }
        func consider(_ deadline: NIODeadline) {
            if next.map({ deadline < $0 }) ?? true { next = deadline }
        }
        if let stream {
            if let deadline = stream.checkTimeouts(now: now, requestTimeout: timeouts.request) { consider(deadline) }
        } else if transport == .http1Connection {
            if let started = headStartedAt, let limit = timeouts.requestHeaders {
                if now >= started + limit {
                    requestHeadersTimedOut()
                    return
                }
                consider(started + limit)
            }
        }
        if transport == .http1Connection {
            // A draining connection is past its idle timeout already; the stream, if any, is checked above.
            let idle = stream == nil && !drainRequested ? idleSince : nil
            let (due, connectionNext) = timeouts.connectionCheck(now: now, openedAt: openedAt, idleSince: idle,
                                                                 maxDurationDone: maxDurationReached)
            switch due {
            case .idle?:
                connectionStats?.downstreamCxIdleTimeout.increment()
                // Envoy closes a connection that never carried a request at once, and drains one that did.
                if !servedRequest {
                    closeConnection()
                    return
                }
                startDraining(closeAfter: timeouts.drain)
            case .maxDuration?:
                maxDurationReached = true
                connectionStats?.downstreamCxMaxDurationReached.increment()
                startDraining(closeAfter: timeouts.drain)
            case nil:
                if let connectionNext { consider(connectionNext) }
            }
        }
        if let next { ensureTimeoutCheck(by: next) }
    }

    /// A local reply that ends the connection, in Envoy's form: text body, date, server, `connection: close`.
    private func replyAndClose(_ status: HTTPResponseStatus, body: String, serverName: String,
                               context: ChannelHandlerContext) {
        let headers = HTTPHeaders([
            ("content-length", String(body.utf8.count)), ("content-type", "text/plain"), ("date", dates.current()),
            ("server", serverName), ("connection", "close"),
        ])
        responseInProgress = true
        send(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)), context: context, promise: nil)
        send(.body(.byteBuffer(ByteBuffer(string: body))), context: context, promise: nil)
        sendLastAndClose(.end(nil), context: context)
    }

    /// `request_headers_timeout` ran out with part of a head read: Envoy's 408, and the connection closes.
    private func requestHeadersTimedOut() {
        guard let context else { return }
        let config = configHolder.load()
        let stats = config.stats
        stats.downstreamRqTotal.increment()
        stats.downstreamRqHttp1Total.increment()
        stats.downstreamRqHeaderTimeout.increment()
        stats.recordResponse(status: 408)
        let body = "request header timeout"
        replyAndClose(.requestTimeout, body: body, serverName: config.serverName, context: context)
        guard !config.accessLoggers.isEmpty, let started = headStartedAt else { return }
        // Logged as Envoy logs it: a stream with no request line yet.
        var entry = AccessLogEntry(startTime: wallClockNow().addingTimeInterval(
            -Double((context.eventLoop.now - started).nanoseconds) / 1e9))
        entry.protocolName = "HTTP/1.1"
        entry.responseCode = 408
        entry.responseCodeDetails = "request_header_timeout"
        entry.bytesSent = UInt64(body.utf8.count)
        entry.durationMs = (context.eventLoop.now - started).nanoseconds / 1_000_000
        entry.downstreamRemoteAddress = context.channel.remoteAddress?.logDescription
        entry.downstreamLocalAddress = context.channel.localAddress?.logDescription
        entry.connectionID = connectionID
        entry.downstreamTLS = tls
        for logger in config.accessLoggers { logger.log(entry) }
    }
}
