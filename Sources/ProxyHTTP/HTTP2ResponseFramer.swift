import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The response side of one downstream HTTP/2 stream: the connection manager's response parts
/// written as the stream's frames, with no codec handler in between.
///
/// A headers-only response leaves as one HEADERS frame with END_STREAM, as Envoy sends it (gRPC's
/// trailers-only replies must end on their HEADERS): a head is held until the next part, and a bare
/// end merges into it. Connection-specific fields (`connection` and the fields it names, `keep-alive`,
/// `proxy-connection`, `transfer-encoding`, `upgrade`) are not sent on HTTP/2. Fields whose values
/// change with every response go out unindexed (`HTTP2ResponseHeaderIndexing`).
struct HTTP2ResponseFramer {
    private var held: (headers: HPACKHeaders, promise: EventLoopPromise<Void>?)?

    mutating func write(_ part: HTTPServerResponsePart, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        switch part {
        case .head(let head):
            release(context: context)
            held = (Self.headerBlock(status: head.status.code, head.headers), promise)
        case .body(let body):
            release(context: context)
            context.write(NIOAny(HTTP2Frame.FramePayload.data(.init(data: body))), promise: promise)
        case .end(let trailers?):
            release(context: context)
            let block = Self.headerBlock(status: nil, trailers)
            context.write(NIOAny(HTTP2Frame.FramePayload.headers(.init(headers: block, endStream: true))), promise: promise)
        case .end(nil):
            if let (headers, heldPromise) = held {
                held = nil
                if let heldPromise, let promise { heldPromise.futureResult.cascade(to: promise) }
                let frame = HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: true))
                context.write(NIOAny(frame), promise: heldPromise ?? promise)
            } else {
                let end = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
                context.write(NIOAny(end), promise: promise)
            }
        }
    }

    /// Writes a held head: before a flush or a close, or when something other than a bare end follows.
    mutating func release(context: ChannelHandlerContext) {
        guard let (headers, promise) = held else { return }
        held = nil
        context.write(NIOAny(HTTP2Frame.FramePayload.headers(.init(headers: headers))), promise: promise)
    }

    /// The stream went away with a head unwritten.
    mutating func fail() {
        held?.promise?.fail(ChannelError.ioOnClosedChannel)
        held = nil
    }

    /// `:status` (for a head) and the fields HTTP/2 may carry, names lower-cased.
    static func headerBlock(status: UInt?, _ headers: HTTPHeaders) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(headers.count + 1)
        if let status { block.add(name: ":status", value: status < 600 ? statusTexts[Int(status)] : String(status)) }
        var connection: [String] = []
        for (name, value) in headers {
            // Lower case already from every source the proxy has; HTTP/2 requires it, and nothing after
            // this looks (NIO's header block check is off on downstream connections).
            let lowered = name.utf8.contains(where: { $0 &- UInt8(ascii: "A") < 26 }) ? name.lowercased() : name
            if ProxiedResponseHeader(lowercased: lowered) == .hopByHop {
                if lowered == "connection" { connection.append(value) }
                continue
            }
            let indexing: HPACKIndexing = HTTP2ResponseHeaderIndexing.isVolatile(lowered) ? .nonIndexable : .indexable
            block.add(name: lowered, value: value, indexing: indexing)
        }
        guard !connection.isEmpty else { return block }
        // The fields `connection` names are the hop's own too.
        let named = Set(connection.flatMap { $0.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) }
            .map { $0.lowercased() })
        guard block.contains(where: { named.contains($0.name) }) else { return block }
        var kept = HPACKHeaders()
        for (name, value, indexing) in block where !named.contains(name) { kept.add(name: name, value: value, indexing: indexing) }
        return kept
    }

    /// `:status` values, made once.
    private static let statusTexts = (0..<600).map { String($0) }
}
