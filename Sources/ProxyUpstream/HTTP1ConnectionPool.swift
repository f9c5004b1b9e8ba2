import NIOCore
import NIOHTTP1

/// An HTTP/1.1 upstream connection checked out of a pool: one request at a time.
public final class UpstreamConnection {
    public let channel: any Channel
    public let handler: UpstreamConnectionHandler
    public let host: Host
    var closed = false

    init(channel: any Channel, handler: UpstreamConnectionHandler, host: Host) {
        self.channel = channel
        self.handler = handler
        self.host = host
    }
}

/// Keep-alive HTTP/1.1 connections of one cluster on one event loop. Lives and is used only on its
/// loop, so it needs no locks; each loop of the server has its own. (@unchecked Sendable: other
/// threads only hand it work through `loop.execute`.)
public final class HTTP1ConnectionPool: @unchecked Sendable {
    public let loop: any EventLoop
    private let connector: any UpstreamConnector
    private let stats: ClusterStats
    private let connectTimeout: TimeAmount
    private var idle: [ObjectIdentifier: [UpstreamConnection]] = [:]

    public init(loop: any EventLoop, connector: any UpstreamConnector, stats: ClusterStats, connectTimeout: TimeAmount) {
        self.loop = loop
        self.connector = connector
        self.stats = stats
        self.connectTimeout = connectTimeout
    }

    /// An idle connection to `host` if one is open, else a new one. `pending` is told whether the
    /// request has to wait for a connect (Envoy's pending request).
    public func acquire(host: Host, delegate: any UpstreamResponseDelegate,
                        completion: @escaping (Result<UpstreamConnection, any Error>, _ waited: Bool) -> Void) {
        loop.preconditionInEventLoop()
        let key = ObjectIdentifier(host)
        while var list = idle[key], let connection = list.popLast() {
            idle[key] = list
            guard !connection.closed, connection.channel.isActive else { continue }
            connection.handler.delegate = delegate
            completion(.success(connection), false)
            return
        }
        let handler = UpstreamConnectionHandler()
        handler.delegate = delegate
        stats.upstreamCxTotal.increment()
        stats.upstreamCxHttp1Total.increment()
        host.stats.cxTotal.wrappingAdd(1, ordering: .relaxed)
        let stats = self.stats
        let connectStarted = NIODeadline.now()
        // The connect completes on this pool's loop, so the pool and the callback stay loop-bound.
        let bound = NIOLoopBound((pool: self, completion: completion), eventLoop: loop)
        connector.connect(to: host, on: loop, timeout: connectTimeout, handler: handler).whenComplete { result in
            let (pool, completion) = bound.value
            switch result {
            case .success(let channel):
                let connection = UpstreamConnection(channel: channel, handler: handler, host: host)
                let connected = NIODeadline.now()
                stats.upstreamCxConnectMs.record(milliseconds: Self.milliseconds(connected - connectStarted))
                stats.upstreamCxActive.increment()
                host.stats.cxActive.wrappingAdd(1, ordering: .relaxed)
                handler.onClose = { [weak pool] in
                    connection.closed = true
                    stats.upstreamCxLengthMs.record(milliseconds: Self.milliseconds(.now() - connected))
                    stats.upstreamCxActive.decrement()
                    stats.upstreamCxDestroy.increment()
                    host.stats.cxActive.wrappingSubtract(1, ordering: .relaxed)
                    pool?.forget(connection)
                }
                completion(.success(connection), true)
            case .failure(let error):
                stats.upstreamCxConnectFail.increment()
                if error is ChannelError, case ChannelError.connectTimeout = error {
                    stats.upstreamCxConnectTimeout.increment()
                }
                host.stats.cxConnectFail.wrappingAdd(1, ordering: .relaxed)
                completion(.failure(error), true)
            }
        }
    }

    /// Returns a connection after a complete response; it stays open for the next request.
    public func release(_ connection: UpstreamConnection) {
        loop.preconditionInEventLoop()
        connection.handler.delegate = nil
        connection.handler.resumeReading()
        guard !connection.closed else { return }
        idle[ObjectIdentifier(connection.host), default: []].append(connection)
    }

    /// Closes a connection whose request was abandoned mid-way (retry, timeout, downstream reset).
    public func discard(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        stats.upstreamCxDestroyLocal.increment()
        connection.channel.close(promise: nil)
    }

    /// Closes every idle connection (cluster removed, server draining).
    public func closeIdle() {
        let all = idle.values.flatMap { $0 }
        idle.removeAll()
        for connection in all { connection.channel.close(promise: nil) }
    }

    /// Closes the idle connections to one host (it left the cluster).
    public func closeIdle(host: Host) {
        let connections = idle.removeValue(forKey: ObjectIdentifier(host)) ?? []
        for connection in connections { connection.channel.close(promise: nil) }
    }

    static func milliseconds(_ amount: TimeAmount) -> Double {
        Double(amount.nanoseconds) / 1_000_000
    }

    private func forget(_ connection: UpstreamConnection) {
        let key = ObjectIdentifier(connection.host)
        idle[key]?.removeAll { $0 === connection }
    }
}
