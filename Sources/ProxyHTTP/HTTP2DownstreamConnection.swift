import NIOCore
import NIOHTTP2
import ProxyCore

/// Sits on an HTTP/2 downstream connection (after NIO's HTTP/2 handler and its connection
/// management handler): counts the connection in the HCM's stats and drains it when the
/// listener asks, with GOAWAY and then, after the drain time, a close.
final class HTTP2DownstreamConnection: ChannelInboundHandler, DrainableConnection, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame

    private let stats: ConnectionManagerStats
    private let tracker: ConnectionTracker?
    private var context: ChannelHandlerContext?
    private var activated = false
    private var draining = false
    private var openedAt = NIODeadline.now()

    init(stats: ConnectionManagerStats, tracker: ConnectionTracker?) {
        self.stats = stats
        self.tracker = tracker
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { activate(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        activate(context: context)
        context.fireChannelActive()
    }

    private func activate(context: ChannelHandlerContext) {
        guard !activated else { return }
        activated = true
        openedAt = .now()
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
            stats.downstreamCxLengthMs.record(milliseconds: Double((NIODeadline.now() - openedAt).nanoseconds) / 1_000_000)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is any NIOHTTP2Error {
            stats.downstreamCxProtocolError.increment()
        }
        context.close(promise: nil)
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
