import NIOCore

/// Bounds the buffer an ADS connection reads into. NIO keeps a connection's read buffer for its
/// next read and never shrinks it, and its default allocator grows that buffer to 64 KB after a
/// large read. A real Envoy's first request is ~60 KB (its node lists every compiled-in
/// extension), so with the default every connected proxy would hold 64 KB for as long as it stays
/// connected. Capped, that request takes a few more reads, once per connection. NIO's HTTP/2 frame
/// decoder also keeps a buffer as large as the reads it had to piece a frame together from, so the
/// cap counts twice: 2 KB (an ACK fits in one read) against 8 KB took meshd from 80 to 68 KB per
/// proxy at 1,000 proxies, each on its own connection as Envoys are (BENCHMARKS.md).
public enum ADSReadBuffer {
    public static let maximumSize = 2 * 1024

    public static var allocator: AdaptiveRecvByteBufferAllocator {
        AdaptiveRecvByteBufferAllocator(minimum: 64, initial: maximumSize, maximum: maximumSize)
    }

    /// For the transport's accept callback: applies the bound to a newly accepted connection.
    @Sendable public static func limit(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.setOption(ChannelOptions.recvAllocator, value: allocator)
    }
}
