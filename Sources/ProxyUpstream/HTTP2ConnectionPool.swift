import NIOCore
import NIOHTTP1
import NIOHTTP2
import ProxyCore

/// Multiplexed HTTP/2 connections of one cluster on one event loop. A request is one stream, seen
/// through NIO's HTTP/2-to-HTTP/1 client codec, so the router drives it exactly like an HTTP/1.1
/// connection. A host gets one connection until it is full (the peer's SETTINGS_MAX_CONCURRENT_STREAMS
/// or the cluster's `max_concurrent_streams`), going away (GOAWAY) or used up
/// (`max_requests_per_connection`); then another is opened. Loop-confined, like the HTTP/1.1 pool.
public final class HTTP2ConnectionPool: @unchecked Sendable {
    public let loop: any EventLoop
    private let connector: any UpstreamConnector
    private let stats: ClusterStats
    private let connectTimeout: TimeAmount
    private let options: HTTP2Options
    /// 0: unlimited.
    private let maxRequestsPerConnection: Int
    private var connections: [ObjectIdentifier: [HTTP2Connection]] = [:]
    private let httpOptions: UpstreamHTTPOptions
    private let idleSweep = IdleSweep()

    typealias Completion = (Result<UpstreamConnection, any Error>, _ waited: Bool) -> Void

    /// One upstream HTTP/2 connection and the streams it carries.
    final class HTTP2Connection {
        let host: Host
        var channel: (any Channel)?
        var multiplexer: NIOHTTP2Handler.StreamMultiplexer?
        var activeStreams = 0
        var streamsOpened = 0
        var peerMaxStreams = Int.max
        var connectedAt = NIODeadline.now()
        /// Since when the connection has carried no stream (`idle_timeout`).
        var idleSince: NIODeadline?
        /// No new streams: GOAWAY received, or `max_requests_per_connection` reached.
        var retired = false
        /// Requests waiting for the connect to finish.
        var waiters: [(delegate: any UpstreamResponseDelegate, completion: Completion)] = []

        init(host: Host) { self.host = host }
    }

    public init(loop: any EventLoop, connector: any UpstreamConnector, stats: ClusterStats, connectTimeout: TimeAmount,
                options: HTTP2Options, maxRequestsPerConnection: Int,
                httpOptions: UpstreamHTTPOptions = UpstreamHTTPOptions()) {
        self.httpOptions = httpOptions
        self.loop = loop
        self.connector = connector
        self.stats = stats
        self.connectTimeout = connectTimeout
        self.options = options
        self.maxRequestsPerConnection = maxRequestsPerConnection
    }

    private func hasRoom(_ connection: HTTP2Connection) -> Bool {
        guard !connection.retired else { return false }
        let limit = min(connection.peerMaxStreams, options.maxConcurrentStreams)
        return connection.activeStreams + connection.waiters.count < limit
    }

    /// A new stream on a connection to `host` with room for it, opening a connection when none has.
    public func acquire(host: Host, delegate: any UpstreamResponseDelegate,
                        completion: @escaping (Result<UpstreamConnection, any Error>, _ waited: Bool) -> Void) {
        loop.preconditionInEventLoop()
        let key = ObjectIdentifier(host)
        if let limit = httpOptions.maxConnectionDuration { retireConnections(to: key, olderThan: limit) }
        if let connection = connections[key]?.first(where: hasRoom) {
            if connection.multiplexer != nil {
                openStream(on: connection, delegate: delegate, waited: false, completion: completion)
            } else {
                connection.waiters.append((delegate, completion))
            }
            return
        }
        let connection = HTTP2Connection(host: host)
        connection.waiters.append((delegate, completion))
        connections[key, default: []].append(connection)
        connect(connection)
    }

    private func connect(_ connection: HTTP2Connection) {
        let host = connection.host
        stats.upstreamCxTotal.increment()
        stats.upstreamCxHttp2Total.increment()
        host.stats.cxTotal.wrappingAdd(1, ordering: .relaxed)
        let events = HTTP2UpstreamConnectionHandler()
        var connectionSettings = NIOHTTP2Handler.ConnectionConfiguration()
        connectionSettings.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: min(options.maxConcurrentStreams, 1 << 30)),
            HTTP2Setting(parameter: .initialWindowSize, value: options.initialStreamWindowSize),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
        connectionSettings.targetWindowSize = options.initialConnectionWindowSize
        var streamSettings = NIOHTTP2Handler.StreamConfiguration()
        streamSettings.targetWindowSize = options.initialStreamWindowSize
        let connectStarted = NIODeadline.now()
        let future = connector.connect(to: host, on: loop, timeout: connectTimeout) { [connectionSettings, streamSettings] channel in
            let sync = channel.pipeline.syncOperations
            // Upstreams do not open streams towards the proxy.
            _ = try sync.configureHTTP2Pipeline(mode: .client, connectionConfiguration: connectionSettings,
                                                streamConfiguration: streamSettings) { stream in
                stream.close()
            }
            try sync.addHandler(events)
        }
        future.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard let multiplexer = try? channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self)
                    .syncMultiplexer()
                else {
                    channel.close(promise: nil)
                    connectFailed(connection, error: ChannelError.inappropriateOperationForState)
                    return
                }
                connection.channel = channel
                connection.multiplexer = multiplexer
                connection.connectedAt = .now()
                stats.upstreamCxConnectMs.record(milliseconds: HTTP1ConnectionPool.milliseconds(.now() - connectStarted))
                stats.upstreamCxActive.increment()
                host.stats.cxActive.wrappingAdd(1, ordering: .relaxed)
                events.onPeerMaxStreams = { [weak connection] limit in connection?.peerMaxStreams = limit }
                events.onGoAway = { [weak connection] in connection?.retired = true }
                events.onClose = { [weak self, connection] in self?.connectionClosed(connection) }
                if !channel.isActive { connectionClosed(connection) }
                let waiters = connection.waiters
                connection.waiters = []
                for waiter in waiters {
                    openStream(on: connection, delegate: waiter.delegate, waited: true, completion: waiter.completion)
                }
            case .failure(let error):
                stats.upstreamCxConnectFail.increment()
                if case ChannelError.connectTimeout = error { stats.upstreamCxConnectTimeout.increment() }
                host.stats.cxConnectFail.wrappingAdd(1, ordering: .relaxed)
                connectFailed(connection, error: error)
            }
        }
    }

    private func connectFailed(_ connection: HTTP2Connection, error: any Error) {
        forget(connection)
        let waiters = connection.waiters
        connection.waiters = []
        for waiter in waiters { waiter.completion(.failure(error), true) }
    }

    private func openStream(on connection: HTTP2Connection, delegate: any UpstreamResponseDelegate, waited: Bool,
                            completion: @escaping Completion) {
        guard let multiplexer = connection.multiplexer, connection.channel?.isActive == true else {
            completion(.failure(ChannelError.ioOnClosedChannel), waited)
            return
        }
        connection.activeStreams += 1
        connection.streamsOpened += 1
        connection.idleSince = nil
        if maxRequestsPerConnection > 0, connection.streamsOpened >= maxRequestsPerConnection {
            connection.retired = true
            stats.upstreamCxMaxRequests.increment()
        }
        let handler = UpstreamConnectionHandler(maxResponseHeaders: httpOptions.maxHeadersCount)
        handler.delegate = delegate
        let host = connection.host
        let promise = loop.makePromise(of: (any Channel).self)
        multiplexer.createStreamChannel(promise: promise) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                try stream.pipeline.syncOperations.addHandler(handler)
            }
        }
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let stream):
                stream.closeFuture.assumeIsolated().whenComplete { [self] _ in streamClosed(on: connection) }
                completion(.success(UpstreamConnection(channel: stream, handler: handler, host: host, connectedAt: loop.now)), waited)
            case .failure(let error):
                handler.delegate = nil
                streamClosed(on: connection)
                completion(.failure(error), waited)
            }
        }
    }

    private func streamClosed(on connection: HTTP2Connection) {
        connection.activeStreams -= 1
        guard connection.activeStreams == 0 else { return }
        if connection.retired {
            connection.channel?.close(promise: nil)
        } else if let idleTimeout = httpOptions.idleTimeout, connection.channel?.isActive == true {
            connection.idleSince = loop.now
            guard !idleSweep.isArmed else { return }
            idleSweep.arm(on: loop, at: loop.now + idleTimeout) { [weak self] now in
                self?.closeIdle(since: now - idleTimeout, idleTimeout: idleTimeout)
            }
        }
    }

    /// `max_connection_duration`: a connection this old takes no new streams and closes when its
    /// streams are done.
    private func retireConnections(to key: ObjectIdentifier, olderThan limit: TimeAmount) {
        let now = loop.now
        for connection in connections[key] ?? [] where !connection.retired && connection.multiplexer != nil
            && now - connection.connectedAt >= limit {
            connection.retired = true
            stats.upstreamCxMaxDurationReached.increment()
            if connection.activeStreams == 0 { connection.channel?.close(promise: nil) }
        }
    }

    /// Closes the connections that have carried no stream since `cutoff` or before (`idle_timeout`);
    /// returns when the next of the others will have waited as long.
    private func closeIdle(since cutoff: NIODeadline, idleTimeout: TimeAmount) -> NIODeadline? {
        var next: NIODeadline?
        for connection in connections.values.flatMap({ $0 }) {
            guard connection.activeStreams == 0, let since = connection.idleSince else { continue }
            if since <= cutoff {
                connection.idleSince = nil
                connection.retired = true
                stats.upstreamCxIdleTimeout.increment()
                connection.channel?.close(promise: nil)
            } else {
                next = IdleSweep.earliest(next, since + idleTimeout)
            }
        }
        return next
    }

    private func connectionClosed(_ connection: HTTP2Connection) {
        guard connection.channel != nil else { return }
        connection.channel = nil
        connection.multiplexer = nil
        stats.upstreamCxLengthMs.record(milliseconds: HTTP1ConnectionPool.milliseconds(.now() - connection.connectedAt))
        stats.upstreamCxActive.decrement()
        stats.upstreamCxDestroy.increment()
        connection.host.stats.cxActive.wrappingSubtract(1, ordering: .relaxed)
        forget(connection)
    }

    private func forget(_ connection: HTTP2Connection) {
        let key = ObjectIdentifier(connection.host)
        connections[key]?.removeAll { $0 === connection }
        if connections[key]?.isEmpty == true { connections[key] = nil }
    }

    /// The stream's response is complete; the stream closes by itself.
    public func release(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
    }

    /// Resets a stream whose request was abandoned (retry, timeout, downstream reset).
    public func discard(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        stats.upstreamRqTxReset.increment()
        connection.channel.close(promise: nil)
    }

    /// Closes connections with no stream open (cluster removed, server draining).
    public func closeIdle() {
        idleSweep.cancel()
        for connection in connections.values.flatMap({ $0 }) where connection.activeStreams == 0 {
            connection.channel?.close(promise: nil)
        }
    }

    /// Retires the connections to a host that left the cluster: streams in flight finish.
    public func closeIdle(host: Host) {
        for connection in connections[ObjectIdentifier(host)] ?? [] {
            connection.retired = true
            if connection.activeStreams == 0 { connection.channel?.close(promise: nil) }
        }
    }
}

/// Watches an upstream HTTP/2 connection for what the pool must know: the peer's stream limit,
/// GOAWAY, and the close.
final class HTTP2UpstreamConnectionHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame

    var onPeerMaxStreams: ((Int) -> Void)?
    var onGoAway: (() -> Void)?
    var onClose: (() -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.payload {
        case .settings(.settings(let settings)):
            for setting in settings where setting.parameter == .maxConcurrentStreams {
                onPeerMaxStreams?(setting.value)
            }
        case .goAway:
            onGoAway?()
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let onClose = self.onClose
        self.onClose = nil
        onClose?()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
