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
        guard !spans.isEmpty, let cluster = clusters.withLock({ $0 })?[collectorCluster] else { return }
        let body = ByteBuffer(string: "[" + spans.joined(separator: ",") + "]")
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint, headers: HTTPHeaders([
            ("host", hostname), ("content-type", "application/json"), ("content-length", String(body.readableBytes)),
        ]))
        FireAndForgetRequest.send(head, body: [body], to: cluster, on: loop)
    }
}
