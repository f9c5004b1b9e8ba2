import NIOCore

/// One end of a byte tunnel between two channels on the same event loop (a WebSocket after its
/// 101, a TCP proxy connection): what one side reads, the other writes. Reading stops while the
/// other side cannot take more, so a slow peer holds back the fast one instead of filling memory.
/// (@unchecked Sendable: both ends live on one event loop and are touched only there.)
package final class TunnelHandler: ChannelDuplexHandler, RemovableChannelHandler, @unchecked Sendable {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    private var partner: TunnelHandler?
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    /// Counts the bytes this side reads (a TCP proxy's `downstream_cx_rx_bytes_total`).
    private let bytesReadCounter: Counter?
    /// When this side last read anything, for idle timeouts.
    package private(set) var lastRead = NIODeadline.now()
    /// Bytes this side read, for access logs.
    package private(set) var bytesRead: UInt64 = 0

    private init(bytesReadCounter: Counter?) {
        self.bytesReadCounter = bytesReadCounter
    }

    /// Two connected ends; add one to each channel's pipeline. The counters, when given, count
    /// the bytes each end reads.
    package static func pair(firstReadCounter: Counter? = nil, secondReadCounter: Counter? = nil)
        -> (TunnelHandler, TunnelHandler)
    {
        let first = TunnelHandler(bytesReadCounter: firstReadCounter)
        let second = TunnelHandler(bytesReadCounter: secondReadCounter)
        first.partner = second
        second.partner = first
        return (first, second)
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let count = UInt64(unwrapInboundIn(data).readableBytes)
        bytesRead &+= count
        bytesReadCounter?.add(count)
        lastRead = .now()
        partner?.partnerWrite(data)
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        partner?.partnerFlush()
        context.fireChannelReadComplete()
    }

    package func channelInactive(context: ChannelHandlerContext) {
        partner?.partnerClose()
        context.fireChannelInactive()
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.partnerBecameWritable() }
        context.fireChannelWritabilityChanged()
    }

    package func read(context: ChannelHandlerContext) {
        if partner?.partnerWritable ?? true {
            context.read()
        } else {
            pendingRead = true
        }
    }

    /// Writes bytes of the proxy's own to this end's channel (a CONNECT's 200), ahead of the tunnel's.
    package func send(_ bytes: ByteBuffer) {
        context?.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
    }

    /// Flushes what this end passed to the other outside a read cycle (a decoder's left-over bytes,
    /// handed on as it leaves the pipeline, come without a read-complete).
    package func flushPartner() {
        partner?.partnerFlush()
    }

    // MARK: called by the other end

    private func partnerWrite(_ data: NIOAny) {
        context?.write(data, promise: nil)
    }

    private func partnerFlush() {
        context?.flush()
    }

    private var partnerWritable: Bool {
        context?.channel.isWritable ?? false
    }

    private func partnerBecameWritable() {
        if pendingRead, let context {
            pendingRead = false
            context.read()
        }
    }

    private func partnerClose() {
        context?.close(promise: nil)
    }
}
