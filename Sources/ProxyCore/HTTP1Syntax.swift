#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// A message that breaks HTTP/1.x's syntax or framing rules; the connection cannot go on.
public struct HTTP1ParseError: Error, Equatable, CustomStringConvertible, Sendable {
    public let description: String

    public init(description: String) {
        self.description = description
    }
}

/// What a head's header lines say about its message's framing and its connection, gathered while
/// the lines are read: nothing has to look the headers up again afterwards.
public struct HTTP1HeadFraming: Sendable {
    public var contentLength: Int?
    public var transferEncoding = false
    /// `chunked` is the last transfer coding.
    public var chunked = false
    /// `chunked` is the one transfer coding, in one `transfer-encoding` header: all a request may
    /// have for Envoy, which answers any other with 501.
    public var chunkedOnly = false
    /// `connection` lists `close`.
    public var close = false
    /// `connection` lists `keep-alive`.
    public var keepAliveToken = false
    /// `connection` lists `upgrade`.
    public var upgradeToken = false
    /// The message has an `upgrade` header.
    public var upgradeHeader = false

    public init() {}

    /// HTTP/1.1 keeps the connection unless told to close; HTTP/1.0 only when told to keep it.
    @inlinable public func keepAlive(minorVersion: Int) -> Bool {
        !close && (minorVersion >= 1 || keepAliveToken)
    }

    /// Both halves of an HTTP/1.1 upgrade request: an `upgrade` header, and `upgrade` in `connection`.
    @inlinable public var asksForUpgrade: Bool { upgradeHeader && upgradeToken }

    mutating func note(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>) throws {
        switch name.count {
        case 14 where String.isASCIICaseInsensitiveEqual(name, to: "content-length"):
            guard let length = HTTP1Syntax.contentLength(value), contentLength ?? length == length else {
                throw HTTP1ParseError(description: "invalid content-length")
            }
            contentLength = length
        case 17 where String.isASCIICaseInsensitiveEqual(name, to: "transfer-encoding"):
            chunked = HTTP1Syntax.lastCodingIsChunked(value)
            chunkedOnly = !transferEncoding && chunked && value.firstIndex(of: UInt8(ascii: ",")) == nil
            transferEncoding = true
        case 10 where String.isASCIICaseInsensitiveEqual(name, to: "connection"):
            // Token by token over the bytes, without splitting them into an array.
            var tokenStart = 0
            for index in 0...value.count where index == value.count || value[index] == UInt8(ascii: ",") {
                let token = HTTP1Syntax.trimmingWhitespace(value, tokenStart..<index)
                switch token.count {
                case 5 where String.isASCIICaseInsensitiveEqual(token, to: "close"): close = true
                case 7 where String.isASCIICaseInsensitiveEqual(token, to: "upgrade"): upgradeToken = true
                case 10 where String.isASCIICaseInsensitiveEqual(token, to: "keep-alive"): keepAliveToken = true
                default: break
                }
                tokenStart = index + 1
            }
        case 7 where String.isASCIICaseInsensitiveEqual(name, to: "upgrade"):
            upgradeHeader = true
        default:
            break
        }
    }
}

/// The pieces of HTTP/1.x syntax that requests and responses share (RFC 9112): lines, header
/// fields, chunk-size lines, `content-length` and `transfer-encoding` values. They read bytes in
/// place; only the fields kept become strings.
public enum HTTP1Syntax {
    /// Envoy's default `max_request_headers_kb` and `max_response_headers_kb`: a head (start line
    /// and headers), or trailers.
    public static let maximumHeadSize = 60 * 1024
    /// Longest chunk-size line (with extensions) taken.
    public static let maximumChunkLineSize = 4 * 1024

    @usableFromInline static let lf = UInt8(ascii: "\n")
    @usableFromInline static let cr = UInt8(ascii: "\r")
    @usableFromInline static let space = UInt8(ascii: " ")
    @usableFromInline static let tab = UInt8(ascii: "\t")

    /// A line ends at LF, or CRLF; a CR anywhere else in it is left for the caller's checks to reject.
    public struct LineEnd {
        /// Where the line's content ends (its CR or LF).
        public var contentEnd: Int
        /// Where the next line starts.
        public var next: Int
    }

    public static func lineEnd(in bytes: UnsafeRawBufferPointer, from start: Int) -> LineEnd? {
        guard start < bytes.count, let base = bytes.baseAddress,
              let found = memchr(base + start, Int32(lf), bytes.count - start) else { return nil }
        let lf = base.distance(to: UnsafeRawPointer(found))
        let contentEnd = lf > start && bytes[lf - 1] == cr ? lf - 1 : lf
        return LineEnd(contentEnd: contentEnd, next: lf + 1)
    }

    /// The first line in `buffer`'s readable bytes, looking no further than `limit` bytes.
    public static func lineEnd(in buffer: ByteBuffer, limit: Int) -> (contentLength: Int, length: Int)? {
        buffer.withUnsafeReadableBytes { bytes in
            let window = UnsafeRawBufferPointer(rebasing: bytes.prefix(limit))
            return lineEnd(in: window, from: 0).map { ($0.contentEnd, $0.next) }
        }
    }

    /// Header (or trailer) lines from `start` up to and including the empty line that ends them;
    /// nil while that line has not arrived. `length` counts from the start of `bytes`. What the
    /// lines say about the message's framing goes into `framing`. Names are lower-cased, as Envoy's
    /// codec keeps them: the proxy sends them so, and lowering them here costs no string of its own.
    public static func parseFields(_ bytes: UnsafeRawBufferPointer, from start: Int, framing: inout HTTP1HeadFraming) throws
        -> (fields: [(String, String)], length: Int)?
    {
        var none = HTTP1RepeatedLines.none
        return try parseFields(bytes, from: start, framing: &framing, repeated: &none)
    }

    /// The same, with the lines of the connection's last head: a line that repeats the one in its
    /// place there takes its field (checked then) instead of making new strings (~600 instructions
    /// a field against one comparison), and these lines are kept for the next head.
    public static func parseFields(_ bytes: UnsafeRawBufferPointer, from start: Int, framing: inout HTTP1HeadFraming,
                                   repeated: inout HTTP1RepeatedLines) throws
        -> (fields: [(String, String)], length: Int)?
    {
        var fields: [(String, String)] = []
        fields.reserveCapacity(16)
        var position = start
        var allRepeated = true
        while true {
            guard let end = lineEnd(in: bytes, from: position) else { return nil }
            if end.contentEnd == position {
                // A head that repeats the last one line for line leaves what is kept as it is.
                if !allRepeated || !repeated.hasLines(fields.count) {
                    repeated.remember(UnsafeRawBufferPointer(rebasing: bytes[start..<position]), fields: fields)
                }
                return (fields, end.next)
            }
            let line = UnsafeRawBufferPointer(rebasing: bytes[position..<end.contentEnd]).assumingMemoryBound(to: UInt8.self)
            if let field = repeated.field(at: fields.count, ifSameAs: line) {
                // Checked when it came last time; only what it says about framing is noted again.
                let colon = line.firstIndex(of: UInt8(ascii: ":"))!
                try framing.note(name: UnsafeBufferPointer(rebasing: line[..<colon]),
                                 value: trimmingWhitespace(line, (colon + 1)..<line.count))
                fields.append(field)
                position = end.next
                continue
            }
            allRepeated = false
            let first = line[0]
            if first == space || first == tab { throw HTTP1ParseError(description: "obsolete line folding") }
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
                throw HTTP1ParseError(description: "header without a colon")
            }
            let name = UnsafeBufferPointer(rebasing: line[..<colon])
            guard HTTP1HeaderValidation.isValidName(name) else { throw HTTP1ParseError(description: "invalid header name") }
            let value = trimmingWhitespace(line, (colon + 1)..<line.count)
            guard HTTP1HeaderValidation.isValidValue(value) else { throw HTTP1ParseError(description: "invalid header value") }
            try framing.note(name: name, value: value)
            fields.append((lowercasedName(name), String(decoding: value, as: UTF8.self)))
            position = end.next
        }
    }

    /// A (valid, so ASCII) header name as a lower-case string.
    static func lowercasedName(_ name: UnsafeBufferPointer<UInt8>) -> String {
        name.contains(where: String.isUppercaseASCII)
            ? String(asciiLowercasing: name) : String(decoding: name, as: UTF8.self)
    }

    /// A chunk-size line (hex digits, then extensions after `;`, ignored); nil until it has arrived.
    public static func readChunkSize(_ buffer: inout ByteBuffer) throws -> Int? {
        guard let line = lineEnd(in: buffer, limit: maximumChunkLineSize) else {
            if buffer.readableBytes >= maximumChunkLineSize {
                throw HTTP1ParseError(description: "chunk size line too long")
            }
            return nil
        }
        let size = try buffer.withUnsafeReadableBytes { bytes -> Int in
            let text = bytes[0..<line.contentLength]
            var size = 0
            var index = text.startIndex
            while index < text.endIndex, let digit = text[index].asciiHexDigitValue {
                guard size <= (Int.max >> 4) else { throw HTTP1ParseError(description: "chunk size too large") }
                size = size << 4 | Int(digit)
                index += 1
            }
            // Then nothing, or extensions after `;` (with whitespace before it allowed).
            let digitsEnd = index
            while index < text.endIndex, text[index] == space || text[index] == tab { index += 1 }
            guard digitsEnd > text.startIndex, index == text.endIndex || text[index] == UInt8(ascii: ";") else {
                throw HTTP1ParseError(description: "invalid chunk size")
            }
            return size
        }
        buffer.moveReaderIndex(forwardBy: line.length)
        return size
    }

    @inlinable public static func isDigit(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "0") < 10
    }

    /// A content-length: digits only (no sign, no list), and no more than fit.
    public static func contentLength(_ value: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !value.isEmpty, value.count <= 18 else { return nil }
        var length = 0
        for byte in value {
            guard isDigit(byte) else { return nil }
            length = length * 10 + Int(byte - UInt8(ascii: "0"))
        }
        return length
    }

    /// Whether the last coding of a `transfer-encoding` value is `chunked`.
    public static func lastCodingIsChunked(_ value: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = value.lastIndex(of: UInt8(ascii: ",")).map { $0 + 1 } ?? 0
        return String.isASCIICaseInsensitiveEqual(trimmingWhitespace(value, start..<value.count), to: "chunked")
    }

    /// `bytes[range]` without the spaces and tabs around it.
    @inlinable
    public static func trimmingWhitespace(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> UnsafeBufferPointer<UInt8> {
        var start = range.lowerBound
        var end = range.upperBound
        while start < end, bytes[start] == space || bytes[start] == tab { start += 1 }
        while end > start, bytes[end - 1] == space || bytes[end - 1] == tab { end -= 1 }
        return UnsafeBufferPointer(rebasing: bytes[start..<end])
    }
}
