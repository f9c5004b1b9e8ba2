import NIOCore
import ProxyUpstream
import Synchronization

/// Holds finished spans until five are waiting or the flush interval passes, as Envoy's reporters
/// do, then hands the batch to `send` on the report loop with the current clusters. Spans are
/// added from any event loop; sending happens on one.
final class SpanBatcher<Span: Sendable>: Sendable {
    private let loop: any EventLoop
    private let pending = Mutex<[Span]>([])
    private let clusters = Mutex<ClusterManager?>(nil)
    private let send: @Sendable ([Span], ClusterManager) -> Void
    private static var minFlushSpans: Int { 5 }

    init(loop: any EventLoop, flushInterval: TimeAmount, send: @escaping @Sendable ([Span], ClusterManager) -> Void) {
        self.loop = loop
        self.send = send
        loop.scheduleRepeatedTask(initialDelay: flushInterval, delay: flushInterval) { [weak self] _ in
            self?.flush()
        }
    }

    func update(clusters manager: ClusterManager) {
        clusters.withLock { $0 = manager }
    }

    func add(_ span: Span) {
        let full = pending.withLock { spans in
            spans.append(span)
            return spans.count >= Self.minFlushSpans
        }
        if full { loop.execute { [self] in flush() } }
    }

    /// Sends what is waiting; on the report loop.
    func flush() {
        let spans = pending.withLock { spans -> [Span] in
            defer { spans.removeAll() }
            return spans
        }
        guard !spans.isEmpty, let manager = clusters.withLock({ $0 }) else { return }
        send(spans, manager)
    }
}
