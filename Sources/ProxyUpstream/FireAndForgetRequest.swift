import NIOCore
import NIOHTTP1

/// Sends one request to a cluster and drops the answer (mirrored requests, trace reports): counted
/// as the cluster's request and response, with the connection back in its pool when the response ends.
public final class FireAndForgetRequest: UpstreamResponseDelegate {
    private let pool: ConnectionPool
    private let stats: ClusterStats
    private var connection: UpstreamConnection?
    /// Held while the request is in flight: the connection holds its delegate weakly.
    private var inFlight: FireAndForgetRequest?
    private var keepAlive = true

    private init(pool: ConnectionPool, stats: ClusterStats) {
        self.pool = pool
        self.stats = stats
    }

    /// Sends `head` and `body` to a host of `cluster` from `loop` (which must be the current loop).
    public static func send(_ head: HTTPRequestHead, body: [ByteBuffer], to cluster: Cluster, on loop: any EventLoop) {
        guard let host = cluster.pickHost() else {
            cluster.stats.upstreamCxNoneHealthy.increment()
            return
        }
        let pool = cluster.pool(on: loop)
        let request = FireAndForgetRequest(pool: pool, stats: cluster.stats)
        request.inFlight = request
        cluster.stats.upstreamRqTotal.increment()
        pool.acquire(host: host, delegate: request) { result, waited in
            if waited { cluster.stats.upstreamRqPendingTotal.increment() }
            guard case .success(let connection) = result else {
                request.inFlight = nil
                return
            }
            request.connection = connection
            connection.handler.write(.head(head))
            for part in body { connection.handler.write(.body(.byteBuffer(part))) }
            connection.handler.write(.end(nil))
            connection.handler.flush()
        }
    }

    public func upstreamResponseHead(_ head: HTTPResponseHead) {
        keepAlive = connection?.handler.responseKeepsConnection ?? UpstreamConnectionHandler.keepsConnection(after: head)
        stats.responseCodes.record(status: Int(head.status.code))
    }

    public func upstreamResponseBody(_ body: ByteBuffer) {}

    public func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        inFlight = nil
        guard let connection else { return }
        self.connection = nil
        if keepAlive { pool.release(connection) } else { pool.discard(connection) }
    }

    public func upstreamReadComplete() {}

    public func upstreamConnectionLost() {
        connection = nil
        inFlight = nil
    }

    public func upstreamProtocolError() { upstreamConnectionLost() }

    public func upstreamWritabilityChanged(_ writable: Bool) {}
}
