import NIOCore

/// Reads a TCP health check's answer: healthy once every expected block has been seen in order
/// (not necessarily next to each other, as Envoy matches), failed if the peer closes first.
final class TCPPayloadMatcher: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let expected: [[UInt8]]
    private var received: [UInt8] = []
    private var done: ((Bool) -> Void)?
    /// Answers longer than this are not a health check's; the check fails.
    private static let limit = 65_536

    init(expected: [[UInt8]], done: @escaping (Bool) -> Void) {
        self.expected = expected
        self.done = done
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        received += bytes.readBytes(length: bytes.readableBytes) ?? []
        if Self.matches(expected, in: received) {
            finish(true)
        } else if received.count > Self.limit {
            finish(false)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(false)
        context.fireChannelInactive()
    }

    private func finish(_ matched: Bool) {
        guard let done else { return }
        self.done = nil
        done(matched)
    }

    /// Whether each block occurs in `bytes` after the previous one.
    static func matches(_ blocks: [[UInt8]], in bytes: [UInt8]) -> Bool {
        var start = 0
        for block in blocks {
            guard let found = firstRange(of: block, in: bytes, from: start) else { return false }
            start = found
        }
        return true
    }

    private static func firstRange(of block: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard !block.isEmpty else { return start }
        guard bytes.count - start >= block.count else { return nil }
        for offset in start...(bytes.count - block.count) where bytes[offset..<offset + block.count].elementsEqual(block) {
            return offset + block.count
        }
        return nil
    }
}
