import NIOCore
import NIOHTTP2

/// Serves a downstream HTTP/2 connection's streams without a channel each. NIO's HTTP/2 handler,
/// installed without a multiplexer, passes up every frame and stream event; this hands each
/// stream's frames to its `HTTP2DownstreamStream` (made, with its connection manager, at the
/// stream's first HEADERS), writes what the streams send with their IDs, and keeps the receive
/// windows open, the connection's and each stream's (what NIO's multiplexer did). Connection-level
/// frames go on to `HTTP2DownstreamConnection`, and so do the events but window updates and the
/// streams' coming and going, which it is told of directly.
final class HTTP2StreamDemultiplexer: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    let malformed: HTTP2MalformedRequestPolicy
    private let makeManager: () -> HTTPConnectionManager
    private let streamWindowTarget: Int
    private var connectionWindow: HTTP2InboundWindow
    private var streams: [HTTP2StreamID: HTTP2DownstreamStream] = [:]
    /// Client stream IDs only grow: HEADERS on a lower one belong to a stream that is gone.
    private var lastOpened = HTTP2StreamID(0)
    private var context: ChannelHandlerContext?
    let eventLoop: any EventLoop
    /// The connection's handler, after this one: told of each stream's start and end by a call.
    private let connectionHandler: HTTP2DownstreamConnection?

    init(eventLoop: any EventLoop, connectionWindowTarget: Int, streamWindowTarget: Int,
         malformed: HTTP2MalformedRequestPolicy, connectionHandler: HTTP2DownstreamConnection? = nil,
         makeManager: @escaping () -> HTTPConnectionManager) {
        self.eventLoop = eventLoop
        self.connectionHandler = connectionHandler
        self.malformed = malformed
        self.makeManager = makeManager
        self.streamWindowTarget = streamWindowTarget
        connectionWindow = HTTP2InboundWindow(target: connectionWindowTarget)
    }

    var channel: (any Channel)? { context?.channel }
    var isWritable: Bool { context?.channel.isWritable ?? false }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Lets go of the context, which holds this handler, and of the streams, which hold it too.
    func handlerRemoved(context: ChannelHandlerContext) {
        closeAll()
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.streamID != .rootStream else { return context.fireChannelRead(data) }
        switch frame.payload {
        case .headers:
            if let stream = streams[frame.streamID] {
                stream.receive(frame.payload)
            } else if frame.streamID > lastOpened {
                open(frame.streamID).receive(frame.payload)
            }
        case .data:
            streams[frame.streamID]?.receive(frame.payload)
        default:
            // RST_STREAM closes the stream (a StreamClosedEvent follows); NIO handles the rest.
            break
        }
    }

    private func open(_ id: HTTP2StreamID) -> HTTP2DownstreamStream {
        let manager = makeManager()
        let stream = HTTP2DownstreamStream(id: id, connection: self, manager: manager, windowTarget: streamWindowTarget)
        streams[id] = stream
        lastOpened = id
        manager.attach(stream)
        return stream
    }

    /// Three window reports, a created and a closed event come with every request: they are told
    /// apart by type before any cast, as a cast that fails costs as much as one that succeeds.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        let type = ObjectIdentifier(Swift.type(of: event))
        if type == ObjectIdentifier(NIOHTTP2WindowUpdatedEvent.self) {
            // Windows are this handler's business: the report goes no further.
            return windowReported(Self.value(event, as: NIOHTTP2WindowUpdatedEvent.self))
        }
        if type == ObjectIdentifier(NIOHTTP2StreamCreatedEvent.self), let connectionHandler {
            return connectionHandler.streamCreated(Self.value(event, as: NIOHTTP2StreamCreatedEvent.self).streamID)
        }
        if type == ObjectIdentifier(StreamClosedEvent.self) {
            let closed = Self.value(event, as: StreamClosedEvent.self)
            streams.removeValue(forKey: closed.streamID)?.closed(reason: closed.reason)
            if let connectionHandler { return connectionHandler.streamClosed() }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// An event whose dynamic type the caller has found to be `T`, taken out of its `Any` as the
    /// value it is, without the runtime's general cast (`as!`: ~300 instructions, three events a
    /// stream). The `Any` is opened into `Event`, which is `T`.
    private static func value<Event, T>(_ event: Event, as _: T.Type) -> T {
        precondition(Event.self == T.self)
        return unsafeBitCast(event, to: T.self)
    }

    private func windowReported(_ window: NIOHTTP2WindowUpdatedEvent) {
        guard let size = window.inboundWindowSize else { return }
        if window.streamID == .rootStream {
            if let increment = connectionWindow.reported(size: size) {
                sendWindowUpdate(stream: .rootStream, increment: increment)
            }
        } else {
            streams[window.streamID]?.inboundWindowReported(size)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        for stream in streams.values { stream.connectionWritabilityChanged() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeAll()
        context.fireChannelInactive()
    }

    private func closeAll() {
        let open = streams.values
        streams = [:]
        for stream in open { stream.closed(reason: .cancel) }
    }

    // MARK: for the streams

    func write(_ frame: HTTP2Frame, promise: EventLoopPromise<Void>?) {
        guard let context else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    func flush() {
        context?.flush()
    }

    func sendWindowUpdate(stream: HTTP2StreamID, increment: Int) {
        write(HTTP2Frame(streamID: stream, payload: .windowUpdate(windowSizeIncrement: increment)), promise: nil)
        flush()
    }

    /// A stream that ended itself (a reset) leaves at once; NIO's StreamClosedEvent then finds nothing.
    func remove(_ stream: HTTP2DownstreamStream) {
        streams.removeValue(forKey: stream.id)
    }

    /// Closes the connection after the current read (`HTTP2MalformedRequestPolicy`).
    func closeConnectionLater() {
        guard let context else { return }
        context.eventLoop.assumeIsolated().execute { context.close(promise: nil) }
    }
}
