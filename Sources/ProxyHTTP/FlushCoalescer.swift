import NIOCore

/// Holds an HTTP/2 connection's flushes until the event loop has handled the I/O it woke up for,
/// then flushes once. A multiplexed connection's responses are finished by reads on many upstream
/// sockets; flushed one by one they cost a writev each, gathered they share one (PERFORMANCE.md
/// counts system calls). Sits between the socket and NIO's HTTP/2 handler.
final class FlushCoalescer: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = ByteBuffer

    private var flushScheduled = false

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        // Tasks queued while the loop handles ready sockets run after all of them, in the same turn.
        context.eventLoop.assumeIsolated().execute { [self] in
            flushScheduled = false
            context.flush()
        }
    }
}
