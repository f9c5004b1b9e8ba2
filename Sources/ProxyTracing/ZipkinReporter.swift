import NIOCore
import NIOHTTP1
import ProxyUpstream

/// POSTs finished spans, as a JSON array, to the collector cluster (batched as Envoy's Zipkin
/// reporter batches them). Requests go through the cluster's own connection pool on one event
/// loop, so the collector is an ordinary cluster with its stats.
public final class ZipkinReporter: Sendable {
    public let collectorCluster: String
    public let endpoint: String
    public let hostname: String
    private let batcher: SpanBatcher<String>

    public init(collectorCluster: String, endpoint: String, hostname: String, loop: any EventLoop,
                flushInterval: TimeAmount = .seconds(5)) {
        self.collectorCluster = collectorCluster
        self.endpoint = endpoint
        self.hostname = hostname
        batcher = SpanBatcher(loop: loop, flushInterval: flushInterval) { spans, clusters in
            guard let cluster = clusters[collectorCluster] else { return }
            let body = ByteBuffer(string: "[" + spans.joined(separator: ",") + "]")
            let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint, headers: HTTPHeaders([
                ("host", hostname), ("content-type", "application/json"), ("content-length", String(body.readableBytes)),
            ]))
            FireAndForgetRequest.send(head, body: [body], to: cluster, on: loop)
        }
    }

    public func update(clusters manager: ClusterManager) {
        batcher.update(clusters: manager)
    }

    func report(_ span: String) {
        batcher.add(span)
    }
}
