import NIOCore
import NIOHTTP2

/// One stream of a downstream HTTP/2 connection served without a channel of its own: its frames
/// come from `HTTP2StreamDemultiplexer` and go, as request parts, to the stream's connection
/// manager; the manager's response frames go to the connection with the stream's ID. What a stream
/// channel gave for free is here: reads the manager pauses are held (their bytes kept out of the
/// WINDOW_UPDATEs, so flow control holds the client back), writability from the bytes written and
/// not yet gone (NIO's stream channel watermarks) and the connection's, and a reset when the manager
/// closes the stream. A stream channel, its pipeline and its handlers cost every request ~40k
/// instructions (BENCHMARKS.md, h2c). Used on the connection's event loop only.
final class HTTP2DownstreamStream: HTTP2StreamFrameSink {
    let id: HTTP2StreamID
    private let connection: HTTP2StreamDemultiplexer
    private let manager: HTTPConnectionManager
    private var translation: HTTP2RequestTranslation
    private var window: HTTP2InboundWindow
    /// Frames that came while the manager had paused reads; made when the first is held. Most streams
    /// hold none, and even an empty ring buffer of NIO's costs an allocation (~1k instructions).
    private var held: CircularBuffer<HTTP2Frame.FramePayload>?
    private(set) var isOpen = true
    private var refused = false
    /// DATA written (not the last) whose write has not completed.
    private var unwrittenBytes = 0
    private var belowWatermark = true

    /// NIO's stream channel defaults.
    static let highWatermark = 8196
    static let lowWatermark = 4092

    init(id: HTTP2StreamID, connection: HTTP2StreamDemultiplexer, manager: HTTPConnectionManager, windowTarget: Int) {
        self.id = id
        self.connection = connection
        self.manager = manager
        // Without extended CONNECT (which keeps stream channels) nothing has checked the block before.
        translation = HTTP2RequestTranslation(validatesRequestHead: true,
                                              extendedConnect: connection.malformed.extendedConnect)
        window = HTTP2InboundWindow(target: windowTarget)
    }

    var eventLoop: any EventLoop { connection.eventLoop }
    var connectionChannel: (any Channel)? { connection.channel }
    var isWritable: Bool { belowWatermark && connection.isWritable }

    // MARK: from the connection

    func receive(_ payload: HTTP2Frame.FramePayload) {
        guard isOpen, !refused, !connection.malformed.connectionClosing else { return }
        if Self.endsStream(payload) { window.closed = true }
        guard !manager.readsPaused, held?.isEmpty ?? true else {
            if held == nil { held = CircularBuffer(initialCapacity: 4) }
            held!.append(payload)
            window.hold(Self.flowControlledLength(payload))
            return
        }
        deliver(payload)
    }

    /// The manager resumed reading: what was held goes to it, until it pauses again.
    func deliverHeld() {
        while isOpen, !refused, !manager.readsPaused, let payload = held?.popFirst() {
            deliver(payload)
            if let increment = window.handedOn(Self.flowControlledLength(payload)) {
                connection.sendWindowUpdate(stream: id, increment: increment)
            }
        }
    }

    private func deliver(_ payload: HTTP2Frame.FramePayload) {
        do {
            try translation.receive(payload, manager: manager)
        } catch {
            refused = true
            held = nil
            if connection.malformed.refusalResetsOnlyTheStream() {
                reset(.protocolError)
            } else {
                connection.closeConnectionLater()
            }
        }
    }

    /// NIO reports what is left of the stream's receive window.
    func inboundWindowReported(_ size: Int) {
        if let increment = window.reported(size: size) {
            connection.sendWindowUpdate(stream: id, increment: increment)
        }
    }

    func connectionWritabilityChanged() {
        guard belowWatermark else { return }
        manager.writabilityChanged(connection.isWritable)
    }

    /// The stream is closed: both ends done (`reason` nil), reset, or the connection gone. NIO may
    /// say so inside a write of the manager's, so a reset reaches the manager after it (as a stream
    /// channel's close did); a clean end at once, which the manager takes care of.
    func closed(reason: HTTP2ErrorCode?) {
        guard isOpen else { return }
        isOpen = false
        window.closed = true
        held = nil
        guard reason != nil else { return manager.downstreamEnded() }
        let loop = connection.eventLoop
        loop.assumeIsolated().execute { [manager] in manager.downstreamClosed(now: loop.now) }
    }

    // MARK: from the manager

    func write(_ payload: HTTP2Frame.FramePayload, promise: EventLoopPromise<Void>?) {
        guard isOpen else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        // The last DATA frame needs no count: nothing is written after it.
        guard case .data(let data) = payload, !data.endStream else {
            return connection.write(HTTP2Frame(streamID: id, payload: payload), promise: promise)
        }
        let size = data.data.readableBytes
        let written = promise ?? connection.eventLoop.makePromise()
        unwrittenBytes += size
        written.futureResult.assumeIsolated().whenComplete { [self] _ in wrote(size) }
        if belowWatermark, unwrittenBytes > Self.highWatermark {
            belowWatermark = false
            if connection.isWritable { manager.writabilityChanged(false) }
        }
        connection.write(HTTP2Frame(streamID: id, payload: payload), promise: written)
    }

    private func wrote(_ size: Int) {
        unwrittenBytes -= size
        guard !belowWatermark, unwrittenBytes < Self.lowWatermark else { return }
        belowWatermark = true
        if isOpen, connection.isWritable { manager.writabilityChanged(true) }
    }

    func flush() {
        connection.flush()
    }

    /// Ends the stream with RST_STREAM, as closing a stream channel does.
    func reset(_ code: HTTP2ErrorCode) {
        guard isOpen else { return }
        connection.remove(self)
        connection.write(HTTP2Frame(streamID: id, payload: .rstStream(code)), promise: nil)
        connection.flush()
        closed(reason: code)
    }

    // MARK: frames

    private static func endsStream(_ payload: HTTP2Frame.FramePayload) -> Bool {
        switch payload {
        case .headers(let headers): headers.endStream
        case .data(let data): data.endStream
        default: false
        }
    }

    private static func flowControlledLength(_ payload: HTTP2Frame.FramePayload) -> Int {
        guard case .data(let data) = payload else { return 0 }
        return data.data.readableBytes
    }
}
