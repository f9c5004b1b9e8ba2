import NIOCore
import NIOHTTP1
import ProxyCore

/// The bytes an HTTP/1.x encoder has produced for a connection but not yet handed to the channel,
/// in one buffer the connection keeps from message to message.
///
/// A proxied response is a head, a small body and an end: encoded here they leave as one buffer in
/// one write at the flush, not as three pipeline writes of three fresh buffers (PERFORMANCE.md:
/// −6 µs per request). After a flush the kernel has usually taken every byte, the channel has let
/// go of the buffer and its storage is reused for the next message without an allocation.
///
/// Framing follows NIO's encoders, so that swapping them changes no byte on the wire: a message
/// that may have a body and has no `content-length` is sent chunked on HTTP/1.1; one that may not
/// have a body loses its `content-length` and `transfer-encoding`.
struct HTTP1OutboundBuffer {
    /// Bodies up to this size are copied next to their head; larger ones leave as buffers of their own.
    static let copiedBodyLimit = 4096
    /// A buffer that grew past this (a large head, many chunks) is not kept for an idle connection.
    static let retainedCapacityLimit = 16 * 1024

    private var pending: ByteBuffer
    /// The channel holds `pending`'s bytes (written, maybe not yet flushed): they are not to be
    /// written again, and new bytes go into storage of their own unless the channel has let go.
    private var handedOff = false
    /// The current message's body is sent with chunked transfer coding.
    private(set) var chunked = false
    /// A header that may not be sent was refused: the connection sends nothing more.
    private var failed = false
    /// Something was written to the channel since the last flush.
    private var wroteSinceFlush = false

    init() {
        pending = ByteBuffer()
    }

    /// Encodes one message part. A head or trailers with a header that may not be sent fail the
    /// write with `invalidHeaderToken` and every write after it, as NIO's header validators do; false
    /// for the part that failed, which the caller reports (once) as an error.
    @discardableResult
    mutating func write<Head: HTTP1EncodableHead>(_ part: HTTPPart<Head, IOData>, context: ChannelHandlerContext,
                                                  promise: EventLoopPromise<Void>?) -> Bool {
        guard !failed else {
            promise?.fail(HTTPParserError.invalidHeaderToken)
            return true
        }
        let encoded: Bool
        switch part {
        case .head(let head):
            encoded = head.encode(into: &self)
            if encoded, let promise { emit(context: context, promise: promise) }
        case .body(let body):
            writeBody(body, context: context, promise: promise)
            encoded = true
        case .end(let trailers):
            encoded = writeEnd(trailers, context: context, promise: promise)
        }
        if !encoded {
            failed = true
            promise?.fail(HTTPParserError.invalidHeaderToken)
        }
        return encoded
    }

    private var hasUnsentBytes: Bool { !handedOff && pending.readableBytes > 0 }

    /// Makes `pending` safe to append to: bytes the channel holds are dropped from it first.
    private mutating func prepareForAppend() {
        guard handedOff else { return }
        // Free when the channel has already written and released them; new storage otherwise.
        pending.clear()
        handedOff = false
    }

    // MARK: heads

    /// Encodes a response head; false (and nothing kept) when a header is not valid to send.
    mutating func encode(_ head: HTTPResponseHead) -> Bool {
        prepareForAppend()
        let start = pending.writerIndex
        let code = head.status.code
        var reason = head.status.reasonPhrase
        if head.version == .http1_1, code >= 100, code <= 999 {
            // The usual status line in one copy.
            reason.withUTF8 { reason in
                _ = pending.writeWithUnsafeMutableBytes(minimumWritableBytes: reason.count + 15) { out in
                    var line = LineWriter(out)
                    line.append("HTTP/1.1 ")
                    line.append(UInt8(ascii: "0") + UInt8(code / 100))
                    line.append(UInt8(ascii: "0") + UInt8(code / 10 % 10))
                    line.append(UInt8(ascii: "0") + UInt8(code % 10))
                    line.append(UInt8(ascii: " "))
                    line.append(reason)
                    line.append("\r\n")
                    return line.count
                }
            }
        } else {
            pending.writeHTTPVersion(head.version)
            pending.writeInteger(UInt8(ascii: " "))
            pending.writeStatusCode(code)
            pending.writeInteger(UInt8(ascii: " "))
            pending.writeString(reason)
            pending.writeStaticString("\r\n")
        }
        return finishHead(head.headers, version: head.version, body: head.status.mayHaveResponseBody ? .yes : .no,
                          start: start)
    }

    /// Encodes a request head; false (and nothing kept) when a header is not valid to send.
    mutating func encode(_ head: HTTPRequestHead) -> Bool {
        prepareForAppend()
        let start = pending.writerIndex
        var method = head.method.rawValue
        var uri = head.uri
        if head.version == .http1_1 {
            // The usual request line in one copy.
            method.withUTF8 { method in
                uri.withUTF8 { uri in
                    _ = pending.writeWithUnsafeMutableBytes(minimumWritableBytes: method.count + uri.count + 12) { out in
                        var line = LineWriter(out)
                        line.append(method)
                        line.append(UInt8(ascii: " "))
                        line.append(uri)
                        line.append(" HTTP/1.1\r\n")
                        return line.count
                    }
                }
            }
        } else {
            pending.writeString(method)
            pending.writeInteger(UInt8(ascii: " "))
            pending.writeString(uri)
            pending.writeInteger(UInt8(ascii: " "))
            pending.writeHTTPVersion(head.version)
            pending.writeStaticString("\r\n")
        }
        return finishHead(head.headers, version: head.version, body: .expected(by: head.method), start: start)
    }

    /// Writes the header fields, noting what they say about framing on the way: one pass over the
    /// headers (each step of which copies out a name and a value) where a scan first took two. In
    /// the rare head that needs a framing header left out, the fields are written again without it.
    private mutating func finishHead(_ headers: HTTPHeaders, version: HTTPVersion, body: HTTP1Framing.Body,
                                     start: Int) -> Bool {
        let fieldsStart = pending.writerIndex
        var framingHeaders = HTTP1Framing.Headers()
        for (name, value) in headers {
            framingHeaders.note(name: name, value: value)
            guard writeField(name, value) else {
                pending.moveWriterIndex(to: start)
                return false
            }
        }
        let framing = HTTP1Framing(framingHeaders, version: version, body: body)
        if framing.dropsAny {
            pending.moveWriterIndex(to: fieldsStart)
            for (name, value) in headers where !framing.drops(name) { _ = writeField(name, value) }
        }
        if framing.addsChunked { pending.writeStaticString("transfer-encoding: chunked\r\n") }
        pending.writeStaticString("\r\n")
        chunked = framing.chunked
        return true
    }

    /// Writes `name: value`; false (and nothing written) when either may not be sent.
    private mutating func writeField(_ name: String, _ value: String) -> Bool {
        let written = name.utf8.withContiguousStorageIfAvailable { name in
            value.utf8.withContiguousStorageIfAvailable { value in writeField(name, value) }
        }
        if let written = written ?? nil { return written }
        // Strings without contiguous UTF-8 (bridged ones; never NIO's decoder's) are made so first.
        var name = name, value = value
        name.makeContiguousUTF8()
        value.makeContiguousUTF8()
        return writeField(name, value)
    }

    /// The line in one copy: a write per piece cost a capacity check and an index move each, four
    /// times per header of every message.
    private mutating func writeField(_ name: UnsafeBufferPointer<UInt8>, _ value: UnsafeBufferPointer<UInt8>) -> Bool {
        guard HTTP1HeaderValidation.isValidName(name), HTTP1HeaderValidation.isValidValue(value) else { return false }
        pending.writeWithUnsafeMutableBytes(minimumWritableBytes: name.count + value.count + 4) { out in
            var line = LineWriter(out)
            line.append(name)
            line.append(UInt8(ascii: ":"))
            line.append(UInt8(ascii: " "))
            line.append(value)
            line.append(UInt8(ascii: "\r"))
            line.append(UInt8(ascii: "\n"))
            return line.count
        }
        return true
    }

    // MARK: bodies and ends

    /// Copies a small body next to what is pending; a large one (or a file region) leaves as a
    /// write of its own, after what is pending.
    private mutating func writeBody(_ body: IOData, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        let length = body.readableBytes
        if length == 0 {
            // An empty chunk would end a chunked body; only the promise needs keeping, in order.
            if let promise { emit(context: context, promise: promise) }
            return
        }
        prepareForAppend()
        if chunked {
            pending.writeHexadecimal(length)
            pending.writeStaticString("\r\n")
        }
        if case .byteBuffer(var bytes) = body, length <= Self.copiedBodyLimit {
            pending.writeBuffer(&bytes)
            if chunked { pending.writeStaticString("\r\n") }
            if let promise { emit(context: context, promise: promise) }
            return
        }
        emit(context: context, promise: nil)
        context.write(NIOAny(body), promise: promise)
        wroteSinceFlush = true
        if chunked {
            prepareForAppend()
            pending.writeStaticString("\r\n")
        }
    }

    /// Ends the message: the last chunk and any trailers when chunked (trailers are dropped
    /// otherwise, as HTTP/1.1 has nowhere to put them). False when a trailer is not valid to send.
    private mutating func writeEnd(_ trailers: HTTPHeaders?, context: ChannelHandlerContext,
                           promise: EventLoopPromise<Void>?) -> Bool {
        if chunked {
            prepareForAppend()
            let start = pending.writerIndex
            pending.writeStaticString("0\r\n")
            for (name, value) in trailers ?? [:] {
                guard writeField(name, value) else {
                    pending.moveWriterIndex(to: start)
                    return false
                }
            }
            pending.writeStaticString("\r\n")
            chunked = false
        }
        if let promise { emit(context: context, promise: promise) }
        return true
    }

    // MARK: handing bytes to the channel

    /// Writes what is pending (an empty buffer when only a promise needs completing, in order).
    mutating func emit(context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        if hasUnsentBytes {
            context.write(NIOAny(IOData.byteBuffer(pending)), promise: promise)
            handedOff = true
            wroteSinceFlush = true
        } else if let promise {
            context.write(NIOAny(IOData.byteBuffer(ByteBuffer())), promise: promise)
            wroteSinceFlush = true
        }
    }

    /// Writes what is pending and flushes; then takes the storage back for the next message.
    /// With nothing written since the last flush (the end of a request without a body, which
    /// encodes to no bytes) there is nothing for the channel to flush, and it is not asked to.
    mutating func flush(context: ChannelHandlerContext) {
        emit(context: context, promise: nil)
        guard wroteSinceFlush else { return }
        wroteSinceFlush = false
        context.flush()
        guard handedOff else { return }
        if pending.capacity > Self.retainedCapacityLimit {
            pending = ByteBuffer()
        } else {
            pending.clear()
        }
        handedOff = false
    }
}

/// A message head `HTTP1OutboundBuffer` encodes: a request's or a response's.
protocol HTTP1EncodableHead {
    /// False (and nothing kept) when a header is not valid to send.
    func encode(into buffer: inout HTTP1OutboundBuffer) -> Bool
}

extension HTTPResponseHead: HTTP1EncodableHead {
    func encode(into buffer: inout HTTP1OutboundBuffer) -> Bool { buffer.encode(self) }
}

extension HTTPRequestHead: HTTP1EncodableHead {
    func encode(into buffer: inout HTTP1OutboundBuffer) -> Bool { buffer.encode(self) }
}

/// How an encoder frames a message's body, decided from its head as NIO's encoders decide it.
struct HTTP1Framing {
    enum Body {
        /// The message may not carry a body (1xx, 204 and 304 responses; TRACE requests).
        case no
        /// The message usually carries one (responses; POST, PUT and PATCH requests).
        case yes
        /// The message rarely carries one (GET, HEAD, DELETE, ...): framed only as its headers say.
        case unlikely

        static func expected(by method: HTTPMethod) -> Body {
            switch method {
            case .TRACE: .no
            case .POST, .PUT, .PATCH: .yes
            default: .unlikely
            }
        }
    }

    /// The framing headers a head has, noted as its fields are written.
    struct Headers {
        var hasContentLength = false
        var firstTransferEncoding: String?

        mutating func note(name: String, value: String) {
            // By length first: most names are neither, and the two differ in length.
            switch name.utf8.count {
            case 14 where name.isASCIICaseInsensitiveEqual(to: "content-length"):
                hasContentLength = true
            case 17 where firstTransferEncoding == nil && name.isASCIICaseInsensitiveEqual(to: "transfer-encoding"):
                firstTransferEncoding = value
            default:
                break
            }
        }
    }

    private(set) var chunked = false
    private(set) var addsChunked = false
    private var dropsContentLength = false
    private var dropsTransferEncoding = false

    init(_ headers: Headers, version: HTTPVersion, body: Body) {
        let hasContentLength = headers.hasContentLength
        let firstTransferEncoding = headers.firstTransferEncoding
        let http11 = version.major == 1 && version.minor >= 1
        defer {
            // Only headers that are there need looking for again as the head is written.
            dropsContentLength = dropsContentLength && hasContentLength
            dropsTransferEncoding = dropsTransferEncoding && firstTransferEncoding != nil
        }
        switch body {
        case .no:
            dropsContentLength = true
            dropsTransferEncoding = true
        case .yes, .unlikely:
            if hasContentLength {
                dropsTransferEncoding = true
            } else if http11, case .yes = body {
                dropsTransferEncoding = true
                addsChunked = true
                chunked = true
            } else if http11 {
                chunked = firstTransferEncoding == "chunked"
            }
        }
    }

    /// A header the head has must be left out.
    var dropsAny: Bool { dropsContentLength || dropsTransferEncoding }

    func drops(_ name: String) -> Bool {
        guard dropsContentLength || dropsTransferEncoding else { return false }
        return (dropsContentLength && name.isASCIICaseInsensitiveEqual(to: "content-length"))
            || (dropsTransferEncoding && name.isASCIICaseInsensitiveEqual(to: "transfer-encoding"))
    }
}

/// Copies the pieces of one line into room a `ByteBuffer` reserved for them (the caller reserves
/// enough: nothing here checks).
private struct LineWriter {
    private let base: UnsafeMutableRawPointer
    private(set) var count = 0

    init(_ room: UnsafeMutableRawBufferPointer) {
        base = room.baseAddress!
    }

    mutating func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        (base + count).copyMemory(from: source, byteCount: bytes.count)
        count += bytes.count
    }

    mutating func append(_ text: StaticString) {
        append(UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func append(_ byte: UInt8) {
        base.storeBytes(of: byte, toByteOffset: count, as: UInt8.self)
        count += 1
    }
}

extension ByteBuffer {
    fileprivate mutating func writeHTTPVersion(_ version: HTTPVersion) {
        switch (version.major, version.minor) {
        case (1, 1): writeStaticString("HTTP/1.1")
        case (1, 0): writeStaticString("HTTP/1.0")
        default:
            writeStaticString("HTTP/")
            writeDecimal(version.major)
            writeInteger(UInt8(ascii: "."))
            writeDecimal(version.minor)
        }
    }

    /// A status code as three digits (codes outside 100...999 as their decimal digits).
    fileprivate mutating func writeStatusCode(_ code: UInt) {
        guard code >= 100, code <= 999 else { return writeDecimal(Int(code)) }
        writeInteger(UInt8(ascii: "0") + UInt8(code / 100))
        writeInteger(UInt8(ascii: "0") + UInt8(code / 10 % 10))
        writeInteger(UInt8(ascii: "0") + UInt8(code % 10))
    }

    fileprivate mutating func writeDecimal(_ value: Int) {
        writeString(String(value))
    }

    /// A chunk size: lowercase hexadecimal, no leading zeros.
    mutating func writeHexadecimal(_ value: Int) {
        precondition(value > 0)
        var shift = (Int.bitWidth - value.leadingZeroBitCount - 1) / 4 * 4
        while shift >= 0 {
            let digit = UInt8((value >> shift) & 0xF)
            writeInteger(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
            shift -= 4
        }
    }
}
