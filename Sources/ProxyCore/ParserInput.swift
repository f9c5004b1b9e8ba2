import NIOCore

/// What a handler that parses its channel's bytes keeps between reads: the bytes it has not parsed
/// yet, and a removal asked for while a parse runs. A part the parser hands on can turn the
/// connection into a tunnel, which removes the handler, before the parse returns; the removal then
/// waits for it, and the bytes past what was parsed (the tunnel's first) go to the handler after it.
public struct ParserInput {
    /// Bytes read but not parsed yet: a head or chunk line cut by the read, or a tunnel's first bytes.
    @inlinable public var held: ByteBuffer? { heldBytes }
    @inlinable public var isParsing: Bool { parsing }
    @usableFromInline var heldBytes: ByteBuffer?
    @usableFromInline var parsing = false
    @usableFromInline var pendingRemoval: ChannelHandlerContext.RemovalToken?

    @inlinable public init() {}

    /// A parse begins: what it parses is what was held, then `bytes`.
    @inlinable public mutating func beginParse(_ bytes: ByteBuffer) -> ByteBuffer {
        parsing = true
        guard var earlier = heldBytes else { return bytes }
        heldBytes = nil
        var bytes = bytes
        earlier.writeBuffer(&bytes)
        return earlier
    }

    /// The parse returned, leaving `unparsed` (nothing, after an error). A removal that waited for
    /// it is done now; then the handler has left the pipeline (true).
    @inlinable public mutating func endParse(unparsed: ByteBuffer?, context: ChannelHandlerContext) -> Bool {
        parsing = false
        if let unparsed, unparsed.readableBytes > 0 { heldBytes = unparsed }
        guard let token = pendingRemoval else { return false }
        pendingRemoval = nil
        leave(context: context, removalToken: token)
        return true
    }

    /// The handler's `removeHandler`: leaves now, or once the running parse returns.
    @inlinable public mutating func remove(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if parsing {
            pendingRemoval = removalToken
        } else {
            leave(context: context, removalToken: removalToken)
        }
    }

    /// Hands on what is held to the handler after this one, and leaves the pipeline.
    @usableFromInline mutating func leave(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let bytes = heldBytes, bytes.readableBytes > 0 { context.fireChannelRead(NIOAny(bytes)) }
        heldBytes = nil
        context.leavePipeline(removalToken: removalToken)
    }
}
