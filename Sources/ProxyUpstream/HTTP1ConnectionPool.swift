import NIOCore
import NIOHTTP1

/// An HTTP/1.1 upstream connection checked out of a pool: one request at a time.
public final class UpstreamConnection {
    public let channel: any Channel
    public let handler: UpstreamConnectionHandler
    public let host: Host
    var closed = false
    /// When the connection was established (`max_connection_duration`).
    let connectedAt: NIODeadline
    /// When it last went back to its pool (`idle_timeout`).
    var idleSince: NIODeadline
    /// Responses it has carried, against `max_requests_per_connection`.
    var requestsServed = 0

    init(channel: any Channel, handler: UpstreamConnectionHandler, host: Host, connectedAt: NIODeadline) {
        self.channel = channel
        self.handler = handler
        self.host = host
        self.connectedAt = connectedAt
        self.idleSince = connectedAt
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
    private var idle: [ObjectIdentifier: IdleConnections] = [:]
    /// The circuit breaker of this pool's priority, shared with that priority's pools on other loops.
    private let resources: PriorityResources
    private typealias Completion = (Result<UpstreamConnection, any Error>, _ waited: Bool) -> Void
    /// Requests waiting for a connection while the cluster is at `max_connections`.
    private var waiters = CircularBuffer<(host: Host, delegate: any UpstreamResponseDelegate, completion: Completion)>()
    private let options: UpstreamHTTPOptions
    private let idleSweep = IdleSweep()
    /// `max_requests_per_connection`: a connection closes after this many responses (0: no limit).
    private let maxRequestsPerConnection: Int

    public init(loop: any EventLoop, connector: any UpstreamConnector, stats: ClusterStats, connectTimeout: TimeAmount,
                resources: PriorityResources, options: UpstreamHTTPOptions = UpstreamHTTPOptions(),
                maxRequestsPerConnection: Int = 0) {
        self.maxRequestsPerConnection = maxRequestsPerConnection
        self.options = options
        self.loop = loop
        self.connector = connector
        self.stats = stats
        self.connectTimeout = connectTimeout
        self.resources = resources
    }

    /// An idle connection to `host` if one is open, else a new one. `pending` is told whether the
    /// request has to wait for a connect (Envoy's pending request).
    public func acquire(host: Host, delegate: any UpstreamResponseDelegate,
                        completion: @escaping (Result<UpstreamConnection, any Error>, _ waited: Bool) -> Void) {
        if let connection = takeIdle(host: host, delegate: delegate) {
            completion(.success(connection), false)
            return
        }
        connectOrWait(host: host, delegate: delegate, completion: completion)
    }

    /// A new connection to `host`, or a place among the requests waiting for one (at
    /// `max_connections`), for a caller that found no idle connection with `takeIdle`.
    public func connectOrWait(host: Host, delegate: any UpstreamResponseDelegate,
                              completion: @escaping (Result<UpstreamConnection, any Error>, _ waited: Bool) -> Void) {
        loop.preconditionInEventLoop()
        guard resources.tryAcquireConnection() else {
            // At max_connections: wait for one to come back, unless max_pending_requests are waiting.
            guard resources.tryEnterPending() else {
                stats.upstreamRqPendingOverflow.increment()
                completion(.failure(CircuitBreakerOverflow()), false)
                return
            }
            stats.upstreamCxOverflow.increment()
            stats.upstreamRqPendingActive.increment()
            waiters.append((host, delegate, completion))
            return
        }
        connect(host: host, delegate: delegate, completion: completion)
    }

    /// The most recently released open connection to `host`, now serving `delegate`; nil when there is none.
    public func takeIdle(host: Host, delegate: any UpstreamResponseDelegate) -> UpstreamConnection? {
        loop.preconditionInEventLoop()
        let key = ObjectIdentifier(host)
        guard let list = idle[key] else { return nil }
        while let connection = list.connections.popLast() {
            guard !connection.closed, connection.channel.isActive else { continue }
            if outlivedMaxDuration(connection) { continue }
            connection.handler.delegate = delegate
            return connection
        }
        return nil
    }

    /// Opens a connection (its budget slot is already taken).
    private func connect(host: Host, delegate: any UpstreamResponseDelegate, completion: @escaping Completion) {
        let handler = UpstreamConnectionHandler(maxResponseHeaders: options.maxHeadersCount)
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
                let connected = NIODeadline.now()
                let connection = UpstreamConnection(channel: channel, handler: handler, host: host,
                                                    connectedAt: pool.loop.now)
                stats.upstreamCxConnectMs.record(milliseconds: Self.milliseconds(connected - connectStarted))
                stats.upstreamCxActive.increment()
                host.stats.cxActive.wrappingAdd(1, ordering: .relaxed)
                handler.onClose = { [weak pool] in
                    pool?.slotFreed()
                    connection.closed = true
                    stats.upstreamCxLengthMs.record(milliseconds: Self.milliseconds(.now() - connected))
                    stats.upstreamCxActive.decrement()
                    stats.upstreamCxDestroy.increment()
                    host.stats.cxActive.wrappingSubtract(1, ordering: .relaxed)
                    pool?.forget(connection)
                }
                completion(.success(connection), true)
            case .failure(let error):
                pool.slotFreed()
                stats.upstreamCxConnectFail.increment()
                if error is ChannelError, case ChannelError.connectTimeout = error {
                    stats.upstreamCxConnectTimeout.increment()
                }
                host.stats.cxConnectFail.wrappingAdd(1, ordering: .relaxed)
                completion(.failure(error), true)
            }
        }
    }

    /// Returns a connection after a complete response; it stays open for the next request, which
    /// may be one that waited at `max_connections`.
    public func release(_ connection: UpstreamConnection) {
        loop.preconditionInEventLoop()
        connection.handler.delegate = nil
        connection.handler.resumeReading()
        guard !connection.closed, !outlivedMaxDuration(connection) else { return }
        connection.requestsServed += 1
        if maxRequestsPerConnection > 0, connection.requestsServed >= maxRequestsPerConnection {
            stats.upstreamCxMaxRequests.increment()
            connection.channel.close(promise: nil)
            return
        }
        if !waiters.isEmpty {
            if let index = waiters.firstIndex(where: { $0.host === connection.host }) {
                let waiter = waiters.remove(at: index)
                leavePending()
                connection.handler.delegate = waiter.delegate
                waiter.completion(.success(connection), true)
            } else {
                // Waiters want other hosts: this connection's slot serves them better.
                connection.channel.close(promise: nil)
            }
            return
        }
        connection.idleSince = loop.now
        if let list = idle[ObjectIdentifier(connection.host)] {
            list.connections.append(connection)
        } else {
            idle[ObjectIdentifier(connection.host)] = IdleConnections(connection)
        }
        // Checked before arming: the closure would cost an allocation per released connection.
        if let idleTimeout = options.idleTimeout, !idleSweep.isArmed {
            idleSweep.arm(on: loop, at: connection.idleSince + idleTimeout) { [weak self] now in
                self?.closeIdle(since: now - idleTimeout, idleTimeout: idleTimeout)
            }
        }
    }

    /// Closes a connection older than `max_connection_duration` instead of reusing it (Envoy drains
    /// such a connection: it finishes its request, then closes).
    private func outlivedMaxDuration(_ connection: UpstreamConnection) -> Bool {
        guard let limit = options.maxConnectionDuration, loop.now - connection.connectedAt >= limit else { return false }
        stats.upstreamCxMaxDurationReached.increment()
        stats.upstreamCxDestroyLocal.increment()
        connection.handler.delegate = nil
        connection.channel.close(promise: nil)
        return true
    }

    /// Closes the pooled connections idle since `cutoff` or before (`idle_timeout`); returns when
    /// the next of the others will have waited as long.
    private func closeIdle(since cutoff: NIODeadline, idleTimeout: TimeAmount) -> NIODeadline? {
        var next: NIODeadline?
        for (key, list) in idle {
            var kept: [UpstreamConnection] = []
            for connection in list.connections where !connection.closed {
                if connection.idleSince <= cutoff {
                    stats.upstreamCxIdleTimeout.increment()
                    stats.upstreamCxDestroyLocal.increment()
                    connection.channel.close(promise: nil)
                } else {
                    kept.append(connection)
                    next = IdleSweep.earliest(next, connection.idleSince + idleTimeout)
                }
            }
            if kept.isEmpty { idle[key] = nil } else { list.connections = kept }
        }
        return next
    }

    /// Closes a connection whose request was abandoned mid-way (retry, timeout, downstream reset).
    public func discard(_ connection: UpstreamConnection) {
        connection.handler.delegate = nil
        stats.upstreamCxDestroyLocal.increment()
        connection.channel.close(promise: nil)
    }

    /// Closes every idle connection (cluster removed, server draining).
    public func closeIdle() {
        let all = idle.values.flatMap(\.connections)
        idle.removeAll()
        idleSweep.cancel()
        for connection in all { connection.channel.close(promise: nil) }
    }

    /// Closes the idle connections to one host (it left the cluster).
    public func closeIdle(host: Host) {
        let connections = idle.removeValue(forKey: ObjectIdentifier(host))?.connections ?? []
        for connection in connections { connection.channel.close(promise: nil) }
    }

    static func milliseconds(_ amount: TimeAmount) -> Double {
        Double(amount.nanoseconds) / 1_000_000
    }

    /// A connection closed or failed to open: its slot goes to the first waiter, if any.
    private func slotFreed() {
        resources.releaseConnection()
        guard let waiter = waiters.popFirst() else { return }
        leavePending()
        guard resources.tryAcquireConnection() else {
            waiters.prepend(waiter)
            resources.reenterPending()
            stats.upstreamRqPendingActive.increment()
            return
        }
        connect(host: waiter.host, delegate: waiter.delegate) { result, _ in waiter.completion(result, true) }
    }

    private func leavePending() {
        resources.leavePending()
        stats.upstreamRqPendingActive.decrement()
    }

    private func forget(_ connection: UpstreamConnection) {
        let key = ObjectIdentifier(connection.host)
        idle[key]?.connections.removeAll { $0 === connection }
    }
}

/// One host's idle connections, most recently released last. A class, so that taking and returning
/// a connection change the list in place: through a dictionary's subscript each did so in a
/// coroutine whose frames are allocated (three allocations a request).
private final class IdleConnections {
    var connections: [UpstreamConnection]

    init(_ first: UpstreamConnection) {
        connections = [first]
    }
}
