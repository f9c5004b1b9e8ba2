import NIOCore

/// Bounds the buffer an ADS connection reads into. NIO keeps a connection's read buffer for its
/// next read and never shrinks it, and its default allocator grows that buffer to 64 KB after a
/// large read. A real Envoy's first request is ~60 KB (its node lists every compiled-in
/// extension), so with the default every connected proxy would hold 64 KB for as long as it stays
/// connected. Capped, that request takes a few more reads, once per connection.
public enum ADSReadBuffer {
    public static let maximumSize = 8 * 1024

    public static var allocator: AdaptiveRecvByteBufferAllocator {
        AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 2048, maximum: maximumSize)
    }

    /// For the transport's accept callback: applies the bound to a newly accepted connection.
    @Sendable public static func limit(_ channel: any Channel) -> EventLoopFuture<Void> {
        channel.setOption(ChannelOptions.recvAllocator, value: allocator)
    }
}
