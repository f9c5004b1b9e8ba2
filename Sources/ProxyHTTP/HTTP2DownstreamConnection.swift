import NIOCore
import NIOHTTP2
import ProxyCore

/// Sits on an HTTP/2 downstream connection (after NIO's HTTP/2 handler): counts the connection in
/// the HCM's stats and drains it when the listener asks, after `idle_timeout` without streams, or at
/// `max_connection_duration`: a GOAWAY that refuses nothing yet and a PING; when the PING's ack is
/// back, a GOAWAY naming the last stream the client opened; a close when the streams are done or
/// the drain time is up. (NIO's connection management handler does the same, but a stream delegate
/// of its own cost every stream ~4.6k instructions in NIO's multiplexer: BENCHMARKS.md, h2c.)
final class HTTP2DownstreamConnection: ChannelInboundHandler, DrainableConnection, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame

    private let stats: ConnectionManagerStats
    private let tracker: ConnectionTracker?
    private var context: ChannelHandlerContext?
    private var activated = false
    private var draining = false
    private var openedAt = NIODeadline.now()
    private let timeouts: ConnectionTimeouts
    /// The connection's streams stop reading once it is closing for an error.
    private let malformed: HTTP2MalformedRequestPolicy?
    private var openStreams = 0
    /// The highest stream ID the client opened: a drain's last GOAWAY names it.
    private var lastStreamID = HTTP2StreamID(0)
    /// A drain's PING, until its ack is back.
    private var drainPing: HTTP2PingData?
    /// A drain's last GOAWAY is out: the connection closes when its last stream does.
    private var finalGoAwaySent = false
    /// Since when the connection has had no stream; nil while it has one.
    private var idleSince: NIODeadline?
    private var timeoutCheck: Scheduled<Void>?

    init(stats: ConnectionManagerStats, tracker: ConnectionTracker?, timeouts: ConnectionTimeouts = ConnectionTimeouts(),
         malformed: HTTP2MalformedRequestPolicy? = nil) {
        self.stats = stats
        self.tracker = tracker
        self.timeouts = timeouts
        self.malformed = malformed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate(context: context) }
    }

    /// Lets go of the context, which holds this handler: the two would otherwise keep each other.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    private func activate(context: ChannelHandlerContext) {
        guard !activated else { return }
        activated = true
        openedAt = context.eventLoop.now
        idleSince = openedAt
        if let interval = timeouts.connectionCheckInterval { scheduleTimeoutCheck(at: openedAt + interval, context: context) }
        tracker?.register(self, loop: context.eventLoop)
        stats.downstreamCxTotal.increment()
        stats.downstreamCxHttp2Total.increment()
        stats.downstreamCxActive.increment()
        stats.downstreamCxHttp2Active.increment()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if activated {
            activated = false
            tracker?.unregister(self)
            stats.downstreamCxActive.decrement()
            stats.downstreamCxHttp2Active.decrement()
            stats.downstreamCxDestroy.increment()
            stats.downstreamCxLengthMs.record(milliseconds: Double((context.eventLoop.now - openedAt).nanoseconds) / 1_000_000)
        }
        timeoutCheck?.cancel()
        timeoutCheck = nil
        context.fireChannelInactive()
    }

    /// Events are told apart by type before any cast (`HTTP2StreamDemultiplexer` says why).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        let type = ObjectIdentifier(Swift.type(of: event))
        if type == ObjectIdentifier(NIOHTTP2StreamCreatedEvent.self) {
            streamCreated((event as! NIOHTTP2StreamCreatedEvent).streamID)
        } else if type == ObjectIdentifier(StreamClosedEvent.self) {
            streamClosed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// A stream began. Told by its event, or by `HTTP2StreamDemultiplexer` directly, which then
    /// does not pass the event on: two pipeline hops (~800 instructions each) for every stream.
    func streamCreated(_ id: HTTP2StreamID) {
        openStreams += 1
        idleSince = nil
        if id > lastStreamID { lastStreamID = id }
    }

    /// A stream ended; told as `streamCreated` is.
    func streamClosed() {
        openStreams -= 1
        guard openStreams == 0, let context else { return }
        idleSince = context.eventLoop.now
        if finalGoAwaySent { context.close(promise: nil) }
    }

    /// Connection-level frames (the streams' frames go to their streams): a drain's PING ack.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let ping = drainPing, case .ping(let answered, ack: true) = unwrapInboundIn(data).payload, answered == ping {
            drainPing = nil
            sendFinalGoAway(context: context)
        }
        context.fireChannelRead(data)
    }

    /// Like the HTTP/1.1 manager's check: streams only record when they come and go; this looks
    /// at the deadlines and sleeps until the next one, or for the shorter timeout at most.
    private func scheduleTimeoutCheck(at deadline: NIODeadline, context: ChannelHandlerContext) {
        timeoutCheck = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self, let context = self.context, !self.draining else { return }
            self.timeoutCheck = nil
            let now = context.eventLoop.now
            let (due, next) = self.timeouts.connectionCheck(now: now, openedAt: self.openedAt, idleSince: self.idleSince,
                                                            maxDurationDone: false)
            switch due {
            case .maxDuration?: self.stats.downstreamCxMaxDurationReached.increment()
            case .idle?: self.stats.downstreamCxIdleTimeout.increment()
            case nil:
                // Streams that start later set deadlines no earlier than the shortest timeout from now.
                guard let interval = self.timeouts.connectionCheckInterval else { return }
                self.scheduleTimeoutCheck(at: min(next ?? now + interval, now + interval), context: context)
                return
            }
            self.startDraining(closeAfter: self.timeouts.drain)
        }
    }

    /// A protocol error closes the connection, as Envoy closes it. NIO has written its GOAWAY (or a
    /// stream's RST_STREAM), which leaves with the flush at the end of the read; the close waits
    /// for that, and meanwhile no stream of the connection reads anything more.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is any NIOHTTP2Error {
            stats.downstreamCxProtocolError.increment()
        }
        malformed?.connectionFailed()
        context.eventLoop.assumeIsolated().execute { context.close(promise: nil) }
    }

    /// A GOAWAY that names the highest stream ID possible, so that no request on its way is refused,
    /// and a PING: once the ack is back the client has seen the GOAWAY, and the next one names the
    /// last stream it opened. A connection whose streams outlive the drain time is closed then.
    func startDraining(closeAfter drainTime: TimeAmount) {
        guard let context, !draining else { return }
        draining = true
        let ping = HTTP2PingData(withInteger: UInt64(truncatingIfNeeded: context.eventLoop.now.uptimeNanoseconds))
        drainPing = ping
        context.write(NIOAny(HTTP2Frame(streamID: .rootStream,
                                        payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))),
                      promise: nil)
        context.writeAndFlush(NIOAny(HTTP2Frame(streamID: .rootStream, payload: .ping(ping, ack: false))), promise: nil)
        context.eventLoop.assumeIsolated().scheduleTask(in: drainTime) { [weak self] in
            self?.context?.close(promise: nil)
        }
    }

    private func sendFinalGoAway(context: ChannelHandlerContext) {
        finalGoAwaySent = true
        let goAway = HTTP2Frame(streamID: .rootStream,
                                payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(NIOAny(goAway), promise: nil)
        if openStreams == 0 { context.close(promise: nil) }
    }
}
