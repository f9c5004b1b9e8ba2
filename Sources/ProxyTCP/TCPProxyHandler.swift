import Foundation
import NIOCore
import ProxyAccessLog
import ProxyCore
import ProxyUpstream

/// Envoy's `tcp_proxy` on one downstream connection: picks a cluster and host, connects (with
/// `max_connect_attempts`), then joins the two sockets with a pair of `TunnelHandler`s. Reads wait
/// for the upstream connection, so nothing is buffered before it exists; either side closing closes
/// the other; `idle_timeout` closes a connection that moved no bytes either way.
public final class TCPProxyHandler: ChannelDuplexHandler, @unchecked Sendable {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundIn = ByteBuffer

    private let holder: SnapshotHolder<TCPProxyConfig>
    private var context: ChannelHandlerContext?
    private var startedProxying = false
    private var connected = false
    private var pendingRead = false
    private var upstream: (any Channel)?
    private var ends: (downstream: TunnelHandler, upstream: TunnelHandler)?
    private var idleTimer: Scheduled<Void>?
    private var random = RequestIDGenerator()
    /// Bytes a listener filter read before this handler existed, sent once the upstream is there.
    private var early: ByteBuffer?
    private var config: TCPProxyConfig?
    // For access logs.
    private let startTime = Date()
    private let started = NIODeadline.now()
    private let connectionID = ConnectionIDs.next()
    private var clusterName: String?
    private var hostAddress: String?
    private var upstreamLocalAddress: String?
    private var earlyBytes: UInt64 = 0
    private var flags: ResponseFlags = []

    public init(config: SnapshotHolder<TCPProxyConfig>) {
        self.holder = config
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context: context) }
    }

    /// Lets go of the context, which holds this handler: the two would otherwise keep each other.
    public func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private func start(context: ChannelHandlerContext) {
        guard !startedProxying else { return }
        startedProxying = true
        let config = holder.load()
        self.config = config
        config.stats.downstreamCxTotal.increment()
        let name = config.pickCluster(random: random.nextRandom())
        clusterName = name
        guard let cluster = config.clusters[name] else {
            flags.insert(.noClusterFound)
            config.stats.downstreamCxNoRoute.increment()
            context.close(promise: nil)
            return
        }
        connect(config: config, cluster: cluster, attempt: 1)
    }

    private func connect(config: TCPProxyConfig, cluster: Cluster, attempt: Int) {
        guard let context, context.channel.isActive else { return }
        guard let host = cluster.pickHost() else {
            flags.insert(.noHealthyUpstream)
            cluster.stats.upstreamCxNoneHealthy.increment()
            context.close(promise: nil)
            return
        }
        hostAddress = host.addressDescription
        let (downstreamEnd, upstreamEnd) = TunnelHandler.pair(
            firstReadCounter: config.stats.downstreamCxRxBytesTotal,
            secondReadCounter: config.stats.downstreamCxTxBytesTotal)
        let future = cluster.connectTunnel(to: host, on: context.eventLoop) { channel in
            try channel.pipeline.syncOperations.addHandler(upstreamEnd)
        }
        future.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard let context = self.context, context.channel.isActive else {
                    channel.close(promise: nil)
                    return
                }
                do {
                    try context.pipeline.syncOperations.addHandler(downstreamEnd, position: .before(self))
                } catch {
                    channel.close(promise: nil)
                    context.close(promise: nil)
                    return
                }
                upstream = channel
                ends = (downstreamEnd, upstreamEnd)
                upstreamLocalAddress = channel.localAddress?.logDescription
                if let early {
                    self.early = nil
                    earlyBytes = UInt64(early.readableBytes)
                    config.stats.downstreamCxRxBytesTotal.add(earlyBytes)
                    channel.writeAndFlush(early, promise: nil)
                }
                connected = true
                if let idle = config.idleTimeout { scheduleIdleCheck(after: idle, idle: idle, config: config) }
                if pendingRead {
                    pendingRead = false
                    context.read()
                }
            case .failure:
                if attempt < config.maxConnectAttempts {
                    connect(config: config, cluster: cluster, attempt: attempt + 1)
                } else {
                    flags.insert(.upstreamConnectionFailure)
                    self.context?.close(promise: nil)
                }
            }
        }
    }

    /// Closes the connection once neither side has read anything for `idle`.
    private func scheduleIdleCheck(after delay: TimeAmount, idle: TimeAmount, config: TCPProxyConfig) {
        guard let context else { return }
        idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            guard let ends, let context = self.context else { return }
            let quiet = NIODeadline.now() - max(ends.downstream.lastRead, ends.upstream.lastRead)
            if quiet >= idle {
                config.stats.idleTimeout.increment()
                context.close(promise: nil)
            } else {
                scheduleIdleCheck(after: idle - quiet, idle: idle, config: config)
            }
        }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Only before the tunnel exists (its downstream end reads everything after).
        var bytes = unwrapInboundIn(data)
        if early == nil { early = bytes } else { early!.writeBuffer(&bytes) }
    }

    public func read(context: ChannelHandlerContext) {
        if connected {
            context.read()
        } else {
            pendingRead = true
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        idleTimer?.cancel()
        idleTimer = nil
        upstream?.close(promise: nil)
        upstream = nil
        if let config, !config.accessLoggers.isEmpty { log(config, channel: context.channel) }
        context.fireChannelInactive()
    }

    /// One access log line per connection, when it closes.
    private func log(_ config: TCPProxyConfig, channel: any Channel) {
        var entry = AccessLogEntry(startTime: startTime)
        entry.bytesReceived = earlyBytes + (ends?.downstream.bytesRead ?? 0)
        entry.bytesSent = ends?.upstream.bytesRead ?? 0
        entry.durationMs = (NIODeadline.now() - started).nanoseconds / 1_000_000
        entry.responseFlags = flags
        entry.upstreamCluster = clusterName
        entry.upstreamHost = hostAddress
        entry.upstreamLocalAddress = upstreamLocalAddress
        entry.downstreamRemoteAddress = channel.remoteAddress?.logDescription
        entry.downstreamLocalAddress = channel.localAddress?.logDescription
        entry.connectionID = connectionID
        for logger in config.accessLoggers { logger.log(entry) }
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
