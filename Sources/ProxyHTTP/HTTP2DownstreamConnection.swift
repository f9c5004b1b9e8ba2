import NIOCore
import NIOHTTP2
import ProxyCore

/// Sits on an HTTP/2 downstream connection (after NIO's HTTP/2 handler and its connection
/// management handler): counts the connection in the HCM's stats and drains it when the
/// listener asks, after `idle_timeout` without streams, or at `max_connection_duration`: GOAWAY,
/// and then, after the drain time, a close.
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
        if let interval = connectionCheckInterval { scheduleTimeoutCheck(at: openedAt + interval, context: context) }
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

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is NIOHTTP2StreamCreatedEvent:
            openStreams += 1
            idleSince = nil
        case is StreamClosedEvent:
            openStreams -= 1
            if openStreams == 0 { idleSince = context.eventLoop.now }
        default:
            break
        }
        context.fireUserInboundEventTriggered(event)
    }

    private var connectionCheckInterval: TimeAmount? {
        [timeouts.connectionIdle, timeouts.maxConnectionDuration].compactMap { $0 }.min()
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
                guard let interval = self.connectionCheckInterval else { return }
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

    /// GOAWAY now (NIO's connection management handler sends it and closes once the streams are
    /// done); a connection whose streams outlive the drain time is closed then.
    func startDraining(closeAfter drainTime: TimeAmount) {
        guard let context, !draining else { return }
        draining = true
        context.channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        context.eventLoop.assumeIsolated().scheduleTask(in: drainTime) { [weak self] in
            self?.context?.close(promise: nil)
        }
    }
}
