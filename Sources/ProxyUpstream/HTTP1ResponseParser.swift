#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOHTTP1
import ProxyCore

/// Reads the HTTP/1.x responses of one upstream connection from its bytes: the status line and
/// headers in one pass over the bytes in place, then the body as RFC 9112 section 6.3 frames it
/// (none, `content-length`, chunked, or until the connection closes). Bodies are handed on as
/// slices of what was read; nothing is copied but the head's strings.
///
/// It is as strict as NIO's parser (llhttp) was in this place: a malformed status line or header,
/// an obsolete line fold, a `content-length` that is not a number or disagrees with another, or
/// both `content-length` and `transfer-encoding` fail the connection. Interim 1xx responses other
/// than 101 are dropped; a 101, or a 2xx to CONNECT, ends HTTP on the connection (a tunnel).
struct HTTP1ResponseParser {
    enum Part {
        /// `keepsConnection`: the response leaves the connection open for the next request (the
        /// version's default, or what `connection` says, and a body not read until the close).
        /// NIO's `isKeepAlive` would work it out again from the header's text on each call.
        case head(HTTPResponseHead, keepsConnection: Bool)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    struct ParseError: Error, Equatable, CustomStringConvertible {
        let description: String
    }

    /// What a request asked for, as far as its response's framing goes.
    enum RequestKind {
        /// A response to HEAD has no body, whatever its headers say.
        case head
        /// A 2xx response to CONNECT turns the connection into a tunnel.
        case connect
        case other

        init(_ method: HTTPMethod) {
            switch method {
            case .HEAD: self = .head
            case .CONNECT: self = .connect
            default: self = .other
            }
        }
    }

    /// Envoy's default `max_response_headers_kb`: the status line and headers, or the trailers.
    static let maximumHeadSize = 60 * 1024
    /// Longest chunk-size line (with extensions) taken.
    static let maximumChunkLineSize = 4 * 1024

    private enum State {
        case head
        case fixedBody(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        /// After a 101 or a CONNECT's 2xx: the rest of the bytes are not HTTP.
        case tunnel
        case failed
    }

    private var state = State.head

    /// Parses what `buffer` holds, handing each part to `emit`; what is left in `buffer` is an
    /// incomplete head or chunk line (to be parsed with the next bytes), or the bytes after a tunnel
    /// began. `request` tells what the oldest unanswered request was; each `.end` answers it. (The
    /// caller keeps that list: a part handed on may start the next request on the connection.)
    mutating func parse(_ buffer: inout ByteBuffer, request: () -> RequestKind, emit: (Part) -> Void) throws {
        do {
            try parseAvailable(&buffer, request: request, emit: emit)
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func parseAvailable(_ buffer: inout ByteBuffer, request: () -> RequestKind,
                                         emit: (Part) -> Void) throws {
        while buffer.readableBytes > 0 {
            switch state {
            case .head:
                let parsed = try buffer.withUnsafeReadableBytes { try Self.parseHead($0) }
                guard let parsed, parsed.length <= Self.maximumHeadSize else {
                    if buffer.readableBytes > Self.maximumHeadSize { try fail("response headers too large") }
                    return
                }
                buffer.moveReaderIndex(forwardBy: parsed.length)
                begin(parsed, request: request(), emit: emit)
            case .fixedBody(let remaining):
                let length = min(remaining, buffer.readableBytes)
                emit(.body(buffer.readSlice(length: length)!))
                if length == remaining {
                    finish(trailers: nil, emit: emit)
                } else {
                    state = .fixedBody(remaining: remaining - length)
                }
            case .chunkSize:
                guard let size = try Self.readChunkSize(&buffer) else { return }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let length = min(remaining, buffer.readableBytes)
                emit(.body(buffer.readSlice(length: length)!))
                state = length == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - length)
            case .chunkDataEnd:
                guard let lineEnd = Self.lineEnd(in: buffer, limit: 2) else {
                    if buffer.readableBytes >= 2 { try fail("missing CRLF after chunk data") }
                    return
                }
                guard lineEnd.contentLength == 0 else { try fail("missing CRLF after chunk data") }
                buffer.moveReaderIndex(forwardBy: lineEnd.length)
                state = .chunkSize
            case .trailers:
                var ignored = Framing()
                let parsed = try buffer.withUnsafeReadableBytes { try Self.parseFields($0, from: 0, framing: &ignored) }
                guard let parsed, parsed.length <= Self.maximumHeadSize else {
                    if buffer.readableBytes > Self.maximumHeadSize { try fail("response trailers too large") }
                    return
                }
                buffer.moveReaderIndex(forwardBy: parsed.length)
                finish(trailers: parsed.fields.isEmpty ? nil : HTTPHeaders(parsed.fields), emit: emit)
            case .untilClose:
                emit(.body(buffer.readSlice(length: buffer.readableBytes)!))
            case .tunnel, .failed:
                return
            }
        }
    }

    /// The connection's input ended. A body read until the close is complete (true, and its end is
    /// emitted); anything else cut short is not.
    mutating func inputClosed(emit: (Part) -> Void) -> Bool {
        guard case .untilClose = state else { return false }
        finish(trailers: nil, emit: emit)
        return true
    }

    // MARK: framing

    private mutating func begin(_ parsed: ParsedHead, request: RequestKind, emit: (Part) -> Void) {
        let code = parsed.head.status.code
        if code >= 100, code < 200, code != 101 {
            // Interim: the final response to the same request follows.
            return
        }
        let untilClose = request != .head && code != 204 && code != 304
            && (parsed.framing.transferEncoding ? !parsed.framing.chunked : parsed.framing.contentLength == nil)
        let keepsConnection = parsed.framing.keepAlive(minorVersion: parsed.head.version.minor) && !untilClose
        emit(.head(parsed.head, keepsConnection: keepsConnection))
        if code == 101 || (request == .connect && code >= 200 && code < 300) {
            state = .tunnel
            emit(.end(nil))
            return
        }
        if request == .head || code == 204 || code == 304 {
            finish(trailers: nil, emit: emit)
        } else if parsed.framing.transferEncoding {
            state = parsed.framing.chunked ? .chunkSize : .untilClose
        } else if let length = parsed.framing.contentLength {
            if length == 0 { finish(trailers: nil, emit: emit) } else { state = .fixedBody(remaining: length) }
        } else {
            state = .untilClose
        }
    }

    private mutating func finish(trailers: HTTPHeaders?, emit: (Part) -> Void) {
        state = .head
        emit(.end(trailers))
    }

    private func fail(_ reason: String) throws -> Never {
        throw ParseError(description: reason)
    }

    // MARK: the head

    struct Framing {
        var contentLength: Int?
        var transferEncoding = false
        /// `chunked` is the last transfer coding.
        var chunked = false
        /// The `connection` tokens that decide whether the connection stays open.
        var close = false
        var keepAliveToken = false

        /// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when told to keep it.
        func keepAlive(minorVersion: Int) -> Bool {
            !close && (minorVersion >= 1 || keepAliveToken)
        }

        mutating func note(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) throws {
            switch name.count {
            case 14 where String.isASCIICaseInsensitiveEqual(name, to: "content-length"):
                guard let length = HTTP1ResponseParser.contentLength(value), contentLength ?? length == length else {
                    throw ParseError(description: "invalid content-length")
                }
                contentLength = length
            case 17 where String.isASCIICaseInsensitiveEqual(name, to: "transfer-encoding"):
                transferEncoding = true
                chunked = HTTP1ResponseParser.lastCodingIsChunked(value)
            case 10 where String.isASCIICaseInsensitiveEqual(name, to: "connection"):
                // Token by token over the bytes, without splitting them into an array.
                var tokenStart = 0
                for index in 0...value.count where index == value.count || value[index] == UInt8(ascii: ",") {
                    let token = HTTP1ResponseParser.trimmingWhitespace(value, tokenStart..<index)
                    if String.isASCIICaseInsensitiveEqual(token, to: "close") { close = true }
                    if String.isASCIICaseInsensitiveEqual(token, to: "keep-alive") { keepAliveToken = true }
                    tokenStart = index + 1
                }
            default:
                break
            }
        }
    }

    struct ParsedHead {
        var head: HTTPResponseHead
        var framing: Framing
        /// Bytes of the status line, the headers and the empty line after them.
        var length: Int
    }

    private static let lf = UInt8(ascii: "\n")
    private static let cr = UInt8(ascii: "\r")
    private static let space = UInt8(ascii: " ")
    private static let tab = UInt8(ascii: "\t")
    /// "HTTP" as four bytes loaded from memory.
    private static let httpPrefix = UInt32(littleEndian: 0x5054_5448)

    /// The head at the start of `bytes`, or nil while its empty line has not arrived.
    static func parseHead(_ bytes: UnsafeRawBufferPointer) throws -> ParsedHead? {
        guard let statusEnd = lineEnd(in: bytes, from: 0) else { return nil }
        let line = UnsafeRawBufferPointer(rebasing: bytes[0..<statusEnd.contentEnd])
        // HTTP/1.x SP 3DIGIT [SP reason]
        guard line.count >= 12, line.loadUnaligned(as: UInt32.self) == httpPrefix, line[4] == UInt8(ascii: "/"),
              line[5] == UInt8(ascii: "1"), line[6] == UInt8(ascii: "."), isDigit(line[7]), line[8] == space,
              isDigit(line[9]), isDigit(line[10]), isDigit(line[11]), line.count == 12 || line[12] == space
        else { throw ParseError(description: "invalid status line") }
        let minor = Int(line[7] - UInt8(ascii: "0"))
        let code = Int(line[9] - 48) * 100 + Int(line[10] - 48) * 10 + Int(line[11] - 48)
        guard code >= 100 else { throw ParseError(description: "invalid status code") }
        var reason = ""
        if line.count > 13 {
            let text = UnsafeRawBufferPointer(rebasing: line[13...]).assumingMemoryBound(to: UInt8.self)
            guard HTTP1HeaderValidation.isValidValue(text) else { throw ParseError(description: "invalid reason phrase") }
            reason = String(decoding: text, as: UTF8.self)
        }
        var framing = Framing()
        guard let fields = try parseFields(bytes, from: statusEnd.next, framing: &framing) else { return nil }
        if framing.transferEncoding, framing.contentLength != nil {
            throw ParseError(description: "both content-length and transfer-encoding")
        }
        let head = HTTPResponseHead(version: HTTPVersion(major: 1, minor: minor),
                                    status: HTTPResponseStatus(statusCode: code, reasonPhrase: reason),
                                    headers: HTTPHeaders(fields.fields))
        return ParsedHead(head: head, framing: framing, length: fields.length)
    }

    /// Header (or trailer) lines from `start` up to and including the empty line that ends them;
    /// nil while that line has not arrived. `length` counts from the start of `bytes`. What the
    /// lines say about the body's framing goes into `framing`.
    static func parseFields(_ bytes: UnsafeRawBufferPointer, from start: Int, framing: inout Framing) throws
        -> (fields: [(String, String)], length: Int)?
    {
        var fields: [(String, String)] = []
        fields.reserveCapacity(16)
        var position = start
        while true {
            guard let end = lineEnd(in: bytes, from: position) else { return nil }
            if end.contentEnd == position { return (fields, end.next) }
            let first = bytes[position]
            if first == space || first == tab { throw ParseError(description: "obsolete line folding") }
            let line = UnsafeRawBufferPointer(rebasing: bytes[position..<end.contentEnd]).assumingMemoryBound(to: UInt8.self)
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else { throw ParseError(description: "header without a colon") }
            let name = UnsafeBufferPointer(rebasing: line[..<colon])
            guard HTTP1HeaderValidation.isValidName(name) else { throw ParseError(description: "invalid header name") }
            let value = trimmingWhitespace(line, (colon + 1)..<line.count)
            guard HTTP1HeaderValidation.isValidValue(value) else { throw ParseError(description: "invalid header value") }
            try framing.note(name: name, value: value)
            fields.append((String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self)))
            position = end.next
        }
    }

    /// A line ends at LF, or CRLF; a CR anywhere else in it is left for the caller's checks to reject.
    struct LineEnd {
        /// Where the line's content ends (its CR or LF).
        var contentEnd: Int
        /// Where the next line starts.
        var next: Int
    }

    static func lineEnd(in bytes: UnsafeRawBufferPointer, from start: Int) -> LineEnd? {
        guard start < bytes.count, let base = bytes.baseAddress,
              let found = memchr(base + start, Int32(lf), bytes.count - start) else { return nil }
        let lf = base.distance(to: UnsafeRawPointer(found))
        let contentEnd = lf > start && bytes[lf - 1] == cr ? lf - 1 : lf
        return LineEnd(contentEnd: contentEnd, next: lf + 1)
    }

    /// The first line in `buffer`'s readable bytes, looking no further than `limit` bytes.
    static func lineEnd(in buffer: ByteBuffer, limit: Int) -> (contentLength: Int, length: Int)? {
        buffer.withUnsafeReadableBytes { bytes in
            let window = UnsafeRawBufferPointer(rebasing: bytes.prefix(limit))
            return lineEnd(in: window, from: 0).map { ($0.contentEnd, $0.next) }
        }
    }

    /// A chunk-size line (hex digits, then extensions after `;`, ignored); nil until it has arrived.
    static func readChunkSize(_ buffer: inout ByteBuffer) throws -> Int? {
        guard let line = lineEnd(in: buffer, limit: maximumChunkLineSize) else {
            if buffer.readableBytes >= maximumChunkLineSize { throw ParseError(description: "chunk size line too long") }
            return nil
        }
        let size = try buffer.withUnsafeReadableBytes { bytes -> Int in
            let text = bytes[0..<line.contentLength]
            var size = 0
            var index = text.startIndex
            while index < text.endIndex, let digit = text[index].asciiHexDigitValue {
                guard size <= (Int.max >> 4) else { throw ParseError(description: "chunk size too large") }
                size = size << 4 | Int(digit)
                index += 1
            }
            // Then nothing, or extensions after `;` (with whitespace before it allowed).
            let digitsEnd = index
            while index < text.endIndex, text[index] == space || text[index] == tab { index += 1 }
            guard digitsEnd > text.startIndex, index == text.endIndex || text[index] == UInt8(ascii: ";") else {
                throw ParseError(description: "invalid chunk size")
            }
            return size
        }
        buffer.moveReaderIndex(forwardBy: line.length)
        return size
    }

    private static func isDigit(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "0") < 10
    }

    /// A content-length: digits only (no sign, no list), and no more than fit.
    static func contentLength(_ value: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var length = 0
        for byte in value {
            guard isDigit(byte) else { return nil }
            length = length * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return length
    }

    /// Whether the last coding of a `transfer-encoding` value is `chunked`.
    static func lastCodingIsChunked(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = value.lastIndex(of: UInt8(ascii: ",")).map { $0 + 1 } ?? 0
        return String.isASCIICaseInsensitiveEqual(trimmingWhitespace(value, start..<value.count), to: "chunked")
    }

    /// `bytes[range]` without the spaces and tabs around it.
    static func trimmingWhitespace(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> UnsafeBufferPointer<UInt8> {
        var start = range.lowerBound
        var end = range.upperBound
        while start < end, bytes[start] == space || bytes[start] == tab { start += 1 }
        while end > start, bytes[end - 1] == space || bytes[end - 1] == tab { end -= 1 }
        return UnsafeBufferPointer(rebasing: bytes[start..<end])
    }
}
