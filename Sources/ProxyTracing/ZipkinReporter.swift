import NIOCore
import NIOHTTP1
import ProxyUpstream
import Synchronization

/// Collects finished spans and POSTs them, as a JSON array, to the collector cluster: once five
/// are waiting or every flush interval, as Envoy's Zipkin reporter does. Requests go through the
/// cluster's own connection pool on one event loop, so the collector is an ordinary cluster with
/// its stats.
public final class ZipkinReporter: Sendable {
    public let collectorCluster: String
    public let endpoint: String
    public let hostname: String
    private let loop: any EventLoop
    private let pending = Mutex<[String]>([])
    /// The current clusters, swapped by the config manager on every update.
    private let clusters = Mutex<ClusterManager?>(nil)
    private static let minFlushSpans = 5

    public init(collectorCluster: String, endpoint: String, hostname: String, loop: any EventLoop,
                flushInterval: TimeAmount = .seconds(5)) {
        self.collectorCluster = collectorCluster
        self.endpoint = endpoint
        self.hostname = hostname
        self.loop = loop
        loop.scheduleRepeatedTask(initialDelay: flushInterval, delay: flushInterval) { [weak self] _ in
            self?.flush()
        }
    }

    public func update(clusters manager: ClusterManager) {
        clusters.withLock { $0 = manager }
    }

    func report(_ span: String) {
        let full = pending.withLock { spans in
            spans.append(span)
            return spans.count >= Self.minFlushSpans
        }
        if full { loop.execute { [self] in flush() } }
    }

    /// Sends what is waiting; on the reporter's loop.
    func flush() {
        let spans = pending.withLock { spans -> [String] in
            defer { spans.removeAll() }
            return spans
        }
        guard !spans.isEmpty, let cluster = clusters.withLock({ $0 })?[collectorCluster],
              let host = cluster.pickHost() else { return }
        let body = ByteBuffer(string: "[" + spans.joined(separator: ",") + "]")
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint, headers: HTTPHeaders([
            ("host", hostname), ("content-type", "application/json"), ("content-length", String(body.readableBytes)),
        ]))
        let pool = cluster.pool(on: loop)
        let sink = ReportResponse(pool: pool)
        sink.inFlight = sink  // the connection holds its delegate weakly
        cluster.stats.upstreamRqTotal.increment()
        pool.acquire(host: host, delegate: sink) { result, _ in
            guard case .success(let connection) = result else {
                sink.inFlight = nil
                return
            }
            sink.connection = connection
            connection.handler.write(.head(head))
            connection.handler.write(.body(.byteBuffer(body)))
            connection.handler.write(.end(nil))
            connection.handler.flush()
        }
    }
}

/// Reads and drops the collector's answer, then gives the connection back.
private final class ReportResponse: UpstreamResponseDelegate {
    let pool: ConnectionPool
    var connection: UpstreamConnection?
    /// Set while the report is in flight, cleared when it ends.
    var inFlight: ReportResponse?
    private var keepAlive = true

    init(pool: ConnectionPool) { self.pool = pool }

    func upstreamResponseHead(_ head: HTTPResponseHead) { keepAlive = head.isKeepAlive }
    func upstreamResponseBody(_ body: ByteBuffer) {}
    func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        inFlight = nil
        guard let connection else { return }
        self.connection = nil
        if keepAlive { pool.release(connection) } else { pool.discard(connection) }
    }
    func upstreamReadComplete() {}
    func upstreamConnectionLost() {
        connection = nil
        inFlight = nil
    }
    func upstreamWritabilityChanged(_ writable: Bool) {}
}
