import NIOCore
import NIOHTTP1
import NIOHTTP2
import ProxyCore

/// Installs the HTTP codec and connection manager on an accepted downstream connection, as the
/// listener's HCM says: HTTP/1.1, HTTP/2 (h2c prior knowledge), or either, chosen by TLS's ALPN
/// when it negotiated one and otherwise by the first bytes.
public enum DownstreamPipeline {
    public static func configure(_ channel: any Channel, config: SnapshotHolder<ConnectionManagerConfig>,
                                 tracker: ConnectionTracker?, negotiatedProtocol: String? = nil,
                                 tls: DownstreamTLSInfo? = nil) throws {
        let current = config.load()
        switch (current.codec, negotiatedProtocol) {
        case (.auto, "h2"?):
            try configureHTTP2(channel, config: config, tracker: tracker, tls: tls)
        case (.auto, "http/1.1"?), (.auto, "http/1.0"?):
            try configureHTTP1(channel.pipeline.syncOperations, config: config, tracker: tracker, tls: tls)
        default:
            try configureByCodec(channel, config: config, tracker: tracker, tls: tls)
        }
    }

    private static func configureByCodec(_ channel: any Channel, config: SnapshotHolder<ConnectionManagerConfig>,
                                         tracker: ConnectionTracker?, tls: DownstreamTLSInfo?) throws {
        switch config.load().codec {
        case .http1:
            try configureHTTP1(channel.pipeline.syncOperations, config: config, tracker: tracker, tls: tls)
        case .http2:
            try configureHTTP2(channel, config: config, tracker: tracker, tls: tls)
        case .auto:
            let current = config.load()
            let idle = current.timeouts.connectionIdle.map { (timeout: $0, counter: current.stats.downstreamCxIdleTimeout) }
            try channel.pipeline.syncOperations.addHandler(HTTPCodecDetector(idleTimeout: idle) { channel, isHTTP2 in
                if isHTTP2 {
                    try configureHTTP2(channel, config: config, tracker: tracker, tls: tls)
                } else {
                    try configureHTTP1(channel.pipeline.syncOperations, config: config, tracker: tracker, tls: tls)
                }
            })
        }
    }

    static func configureHTTP1(_ pipeline: ChannelPipeline.SynchronousOperations,
                               config: SnapshotHolder<ConnectionManagerConfig>, tracker: ConnectionTracker?,
                               tls: DownstreamTLSInfo? = nil) throws {
        // Our request parser calls the connection manager directly, and hands on the bytes it holds
        // when it leaves for a tunnel; the connection manager encodes (and validates) responses.
        let manager = HTTPConnectionManager(config: config, tracker: tracker, tls: tls, encodesResponses: true)
        let current = config.load()
        let parser = HTTP1RequestParserHandler(manager: manager, reportsReads: current.timeouts.requestHeaders != nil,
                                               maximumHeadSize: current.maxRequestHeadersBytes)
        try pipeline.addHandlers([parser, manager])
    }

    static func configureHTTP2(_ channel: any Channel, config: SnapshotHolder<ConnectionManagerConfig>,
                               tracker: ConnectionTracker?, tls: DownstreamTLSInfo? = nil) throws {
        let current = config.load()
        let options = current.http2Options
        let pipeline = channel.pipeline.syncOperations
        var connection = NIOHTTP2Handler.ConnectionConfiguration()
        connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: options.maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: options.initialStreamWindowSize),
            HTTP2Setting(parameter: .maxHeaderListSize, value: current.maxRequestHeadersBytes),
        ] + (options.allowConnect ? [HTTP2Setting(parameter: .enableConnectProtocol, value: 1)] : [])
        connection.targetWindowSize = options.initialConnectionWindowSize
        // The request translation checks what a client sends (`HTTP2RequestHeaderValidation`, and
        // the body against its `content-length`); NIO's checks would look at every response too.
        connection.headerBlockValidation = .disabled
        connection.contentLengthValidation = .disabled
        let malformed = HTTP2MalformedRequestPolicy(streamError: options.streamErrorOnInvalidHTTPMessage,
                                                    extendedConnect: options.allowConnect,
                                                    messagingErrors: current.stats.http2RxMessagingError)
        var stream = NIOHTTP2Handler.StreamConfiguration()
        stream.targetWindowSize = options.initialStreamWindowSize
        try pipeline.addHandler(FlushCoalescer())
        let connectionID = ConnectionIDs.next()
        let sharedTimeoutCheck = SharedTimeoutCheck(loop: channel.eventLoop)
        let responseIndexing = HTTP2ResponseHeaderIndexing()
        let connectionHandler = HTTP2DownstreamConnection(stats: current.stats, tracker: tracker,
                                                          timeouts: current.timeouts, malformed: malformed)
        let makeManager: @Sendable () -> HTTPConnectionManager = {
            HTTPConnectionManager(config: config, tracker: nil, transport: .http2Stream, connectionID: connectionID,
                                  tls: tls, sharedTimeoutCheck: sharedTimeoutCheck, responseIndexing: responseIndexing)
        }
        if options.allowConnect {
            // Extended CONNECT turns a stream into a byte tunnel, which needs the stream as a channel.
            _ = try pipeline.configureHTTP2Pipeline(
                mode: .server, connectionConfiguration: connection, streamConfiguration: stream
            ) { streamChannel in
                do {
                    // The reader hands request parts to the manager, which writes the response's frames.
                    let manager = makeManager()
                    try streamChannel.pipeline.syncOperations.addHandlers([
                        HTTP2ExtendedConnect(malformed: malformed),
                        HTTP2StreamRequestReader(manager: manager, malformed: malformed),
                        manager,
                    ])
                } catch {
                    return streamChannel.eventLoop.makeFailedFuture(error)
                }
                // The event loop's one succeeded future, where a new one per stream cost an allocation.
                return streamChannel.eventLoop.makeSucceededVoidFuture()
            }
        } else {
            try pipeline.addHandler(NIOHTTP2Handler(mode: .server, connectionConfiguration: connection,
                                                    streamConfiguration: stream))
            try pipeline.addHandler(HTTP2StreamDemultiplexer(
                eventLoop: channel.eventLoop, connectionWindowTarget: Int(options.initialConnectionWindowSize),
                streamWindowTarget: Int(options.initialStreamWindowSize), malformed: malformed,
                connectionHandler: connectionHandler, makeManager: makeManager))
        }
        try pipeline.addHandler(connectionHandler)
    }
}

/// Looks at the first bytes of a connection for HTTP/2's client preface: HTTP/2 when they match
/// it, HTTP/1.1 as soon as one differs (for `GET`, at the first byte). Then installs the codec
/// and steps out of the pipeline, handing on what it read. A connection that sends nothing for the
/// connection manager's `idle_timeout` is closed, as Envoy closes it.
final class HTTPCodecDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private let install: (any Channel, _ isHTTP2: Bool) throws -> Void
    private var buffered: ByteBuffer?
    private let idleTimeout: (timeout: TimeAmount, counter: Counter)?
    private var idleClose: Scheduled<Void>?

    init(idleTimeout: (timeout: TimeAmount, counter: Counter)? = nil,
         install: @escaping (any Channel, _ isHTTP2: Bool) throws -> Void) {
        self.idleTimeout = idleTimeout
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard let idleTimeout else { return }
        idleClose = context.eventLoop.assumeIsolated().scheduleTask(in: idleTimeout.timeout) { [context] in
            idleTimeout.counter.increment()
            context.close(promise: nil)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleClose?.cancel()
        idleClose = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        idleClose?.cancel()
        idleClose = nil
        var bytes = unwrapInboundIn(data)
        if var earlier = buffered {
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        let view = bytes.readableBytesView
        let checked = min(view.count, Self.preface.count)
        let matches = view.prefix(checked).elementsEqual(Self.preface.prefix(checked))
        if matches, checked < Self.preface.count {
            buffered = bytes
            return
        }
        buffered = nil
        do {
            try install(context.channel, matches)
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(bytes))
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
