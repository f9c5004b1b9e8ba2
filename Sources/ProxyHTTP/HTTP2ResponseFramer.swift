import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import ProxyCore

/// The response side of one downstream HTTP/2 stream: the connection manager's response parts
/// written as the stream's frames, with no codec handler in between.
///
/// A response's last frame carries END_STREAM: a headers-only response is one HEADERS frame, as
/// Envoy sends it (gRPC's trailers-only replies must end on their HEADERS), and a body's last DATA
/// frame ends the stream. Envoy 1.40 sends an empty DATA frame after the body instead; merging the
/// end saves a frame a response, each a trip through NIO's HTTP/2 state machine and encoder
/// (BENCHMARKS.md, h2c). So the last head or body part is held until the next part, which an end
/// merges into, or until a flush or close. Connection-specific fields (`connection` and the fields
/// it names, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`) are not sent on
/// HTTP/2. Fields whose values change with every response go out unindexed, as the connection's
/// `HTTP2ResponseHeaderIndexing` has it.
struct HTTP2ResponseFramer {
    private enum Held {
        case head(HPACKHeaders)
        case body(IOData)
    }

    private var held: (part: Held, promise: EventLoopPromise<Void>?)?
    private let indexing: HTTP2ResponseHeaderIndexing

    init(indexing: HTTP2ResponseHeaderIndexing) {
        self.indexing = indexing
    }

    mutating func write<Sink: HTTP2StreamFrameSink>(_ part: HTTPServerResponsePart, to sink: Sink,
                                                    promise: EventLoopPromise<Void>?) {
        switch part {
        case .head(let head):
            release(to: sink)
            held = (.head(headerBlock(status: head.status.code, head.headers)), promise)
        case .body(let body):
            release(to: sink)
            held = (.body(body), promise)
        case .end(let trailers?):
            release(to: sink)
            let block = headerBlock(status: nil, trailers)
            sink.write(.headers(.init(headers: block, endStream: true)), promise: promise)
        case .end(nil):
            guard let (part, heldPromise) = held else {
                return sink.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)), promise: promise)
            }
            held = nil
            if let heldPromise, let promise { heldPromise.futureResult.cascade(to: promise) }
            sink.write(Self.frame(part, endStream: true), promise: heldPromise ?? promise)
        }
    }

    /// Writes a held part: before a flush or a close, or when something other than a bare end follows.
    mutating func release<Sink: HTTP2StreamFrameSink>(to sink: Sink) {
        guard let (part, promise) = held else { return }
        held = nil
        sink.write(Self.frame(part, endStream: false), promise: promise)
    }

    /// The stream went away with a part unwritten.
    mutating func fail() {
        held?.promise?.fail(ChannelError.ioOnClosedChannel)
        held = nil
    }

    private static func frame(_ part: Held, endStream: Bool) -> HTTP2Frame.FramePayload {
        switch part {
        case .head(let headers): .headers(.init(headers: headers, endStream: endStream))
        case .body(let body): .data(.init(data: body, endStream: endStream))
        }
    }

    /// `:status` (for a head) and the fields HTTP/2 may carry, names lower-cased.
    func headerBlock(status: UInt?, _ headers: HTTPHeaders) -> HPACKHeaders {
        var block = HPACKHeaders()
        block.reserveCapacity(headers.count + 1)
        if let status { block.add(name: ":status", value: status < 600 ? Self.statusTexts[Int(status)] : String(status)) }
        var named: [String] = []
        for (name, value) in headers {
            // Lower case already from every source the proxy has; HTTP/2 requires it, and nothing after
            // this looks (NIO's header block check is off on downstream connections).
            let lowered = name.asciiLowercased()
            if ProxiedResponseHeader(lowercased: lowered) == .hopByHop {
                if lowered == "connection" { Self.fieldsNamed(byConnection: value, into: &named) }
                continue
            }
            block.add(name: lowered, value: value, indexing: indexing.indexing(ofLowercased: lowered))
        }
        // The fields `connection` names are the hop's own too.
        guard !named.isEmpty, block.contains(where: { named.contains($0.name) }) else { return block }
        var kept = HPACKHeaders()
        for (name, value, indexing) in block where !named.contains(name) { kept.add(name: name, value: value, indexing: indexing) }
        return kept
    }

    /// The fields a `connection` value names that are not left out anyway: `close` names none, and
    /// `keep-alive` (what HTTP/1.1 upstreams nearly always send) is a hop-by-hop field already.
    static func fieldsNamed(byConnection value: String, into named: inout [String]) {
        if value.isASCIICaseInsensitiveEqual(to: "keep-alive") || value.isASCIICaseInsensitiveEqual(to: "close") { return }
        for token in value.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" }) {
            let lowered = String(token).asciiLowercased()
            if lowered != "close", ProxiedResponseHeader(lowercased: lowered) != .hopByHop { named.append(lowered) }
        }
    }

    /// `:status` values, made once.
    private static let statusTexts = (0..<600).map { String($0) }
}

/// Where a downstream stream's frames go: its channel, or, for a stream without one, its
/// connection (`HTTP2DownstreamStream`).
protocol HTTP2StreamFrameSink {
    func write(_ payload: HTTP2Frame.FramePayload, promise: EventLoopPromise<Void>?)
}

extension ChannelHandlerContext: HTTP2StreamFrameSink {
    func write(_ payload: HTTP2Frame.FramePayload, promise: EventLoopPromise<Void>?) {
        write(NIOAny(payload), promise: promise)
    }
}
