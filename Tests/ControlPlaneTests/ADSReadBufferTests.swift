import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import ControlPlane

@Suite struct ADSReadBufferTests {
    /// Records the capacity of every buffer the connection reads into.
    final class ReadRecorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let reads = NIOLockedValueBox<(bytes: Int, largestCapacity: Int)>((0, 0))

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            reads.withLockedValue { $0 = ($0.bytes + buffer.readableBytes, max($0.largestCapacity, buffer.capacity)) }
        }
    }

    /// A first request the size of a real Envoy's (~60 KB) leaves the connection holding a read
    /// buffer no larger than the bound; NIO's default allocator would have grown it to 64 KB.
    @Test func aLargeFirstMessageDoesNotGrowTheReadBuffer() async throws {
        let recorder = ReadRecorder()
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                ADSReadBuffer.limit(channel).flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandler(recorder)
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        defer { server.close(promise: nil) }
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(to: server.localAddress!).get()
        defer { client.close(promise: nil) }
        let size = 60 * 1024
        try await client.writeAndFlush(ByteBuffer(repeating: 0x61, count: size)).get()
        for _ in 0..<300 where recorder.reads.withLockedValue({ $0.bytes }) < size {
            try await Task.sleep(for: .milliseconds(10))
        }
        let reads = recorder.reads.withLockedValue { $0 }
        #expect(reads.bytes == size)
        #expect(reads.largestCapacity > 0)
        #expect(reads.largestCapacity <= ADSReadBuffer.maximumSize)
    }
}
