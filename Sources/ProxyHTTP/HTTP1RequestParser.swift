import NIOCore
import NIOHTTP1
import ProxyCore

/// Reads the HTTP/1.x requests of one downstream connection from its bytes: the request line and
/// headers in one pass over the bytes in place, then the body as RFC 9112 section 6.3 frames a
/// request's (none, `content-length`, or chunked). Bodies are handed on as slices of what was read.
///
/// It keeps NIO's parser's (llhttp's) rules, which the proxy used before: a method it does not
/// know, a request target with a space or control byte (or, as Envoy, a fragment), a version other than HTTP/1.0 and 1.1, a
/// malformed header, an obsolete line fold, a `content-length` that is not a number or disagrees
/// with another, or `content-length` with `transfer-encoding` fail the connection; so does, as in
/// Envoy, any `transfer-encoding` but `chunked` alone (request smuggling lives in those gaps).
/// Empty lines before a request line are skipped. After an upgrade request (CONNECT, or `upgrade`
/// named in `connection`) nothing more is read as HTTP until `resumeAfterUpgrade`: the bytes after
/// it belong to a tunnel if the upgrade happens.
struct HTTP1RequestParser {
    enum Part {
        /// `keepAlive`: the request lets the connection stay open after it (the version's default,
        /// or what `connection` says). NIO's `isKeepAlive` would split the header's text on each call.
        case head(HTTPRequestHead, keepAlive: Bool)
        case body(ByteBuffer)
        case end(HTTPHeaders?)
    }

    /// A head over Envoy's default `max_request_headers_kb`: answered with 431 rather than 400.
    static let headersTooLarge = HTTP1ParseError(description: "request headers too large")
    /// A transfer coding other than `chunked` alone: Envoy's 501.
    static let unsupportedTransferEncoding = HTTP1ParseError(description: "unsupported transfer-encoding")

    private enum State {
        case head
        case body(HTTP1BodyReader, upgrade: Bool)
        /// After an upgrade request: the bytes that follow wait for the upgrade's outcome.
        case upgraded
        case failed
    }

    private var state = State.head
    /// The connection manager's `max_request_headers_kb`, in bytes: a longer head (or trailers) gets 431.
    private let maximumHeadSize: Int
    /// How far an incomplete head has been searched for its end: a head that arrives a few bytes
    /// at a time is parsed once it is whole, not again on every read.
    private var headScanned = 0
    /// The last request's header lines, which the next request's mostly repeat.
    private var repeatedLines = HTTP1RepeatedLines()

    init(maximumHeadSize: Int = HTTP1Syntax.maximumHeadSize) {
        self.maximumHeadSize = maximumHeadSize
    }

    /// An upgrade request has been read whole and the bytes after it are left unparsed.
    var isWaitingForUpgrade: Bool {
        if case .upgraded = state { return true }
        return false
    }

    /// The upgrade did not happen: what follows is HTTP/1.1 again.
    mutating func resumeAfterUpgrade() {
        if case .upgraded = state { state = .head }
    }

    /// Parses what `buffer` holds, handing each part to `emit`; what is left in `buffer` is an
    /// incomplete head, chunk line or trailers (to be parsed with the next bytes), or what follows
    /// an upgrade request.
    mutating func parse(_ buffer: inout ByteBuffer, emit: (Part) -> Void) throws {
        do {
            try parseAvailable(&buffer, emit: emit)
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func parseAvailable(_ buffer: inout ByteBuffer, emit: (Part) -> Void) throws {
        while buffer.readableBytes > 0 {
            switch state {
            case .head:
                if headScanned > 0 {
                    let end = buffer.withUnsafeReadableBytes { Self.headEnd(in: $0, from: headScanned - 2) }
                    guard end != nil else {
                        if buffer.readableBytes > maximumHeadSize { throw Self.headersTooLarge }
                        headScanned = buffer.readableBytes
                        return
                    }
                }
                let parsed = try buffer.withUnsafeReadableBytes { try Self.parseHead($0, repeated: &repeatedLines) }
                guard let parsed else {
                    if buffer.readableBytes > maximumHeadSize { throw Self.headersTooLarge }
                    headScanned = buffer.readableBytes
                    return
                }
                headScanned = 0
                buffer.moveReaderIndex(forwardBy: parsed.length)
                if parsed.length - parsed.skipped > maximumHeadSize { throw Self.headersTooLarge }
                guard let head = parsed.head else { continue }
                begin(head, framing: parsed.framing, emit: emit)
            case .body(var reader, let upgrade):
                // Out of the state while it reads, so the reader is not copied on write.
                state = .failed
                switch try reader.read(&buffer, body: { emit(.body($0)) }) {
                case .needMore:
                    state = .body(reader, upgrade: upgrade)
                    return
                case .complete(let trailers):
                    finish(trailers: trailers.map(HTTPHeaders.init), upgrade: upgrade, emit: emit)
                }
            case .upgraded, .failed:
                return
            }
        }
    }

    private mutating func begin(_ head: HTTPRequestHead, framing: HTTP1HeadFraming, emit: (Part) -> Void) {
        emit(.head(head, keepAlive: framing.keepAlive(minorVersion: head.version.minor)))
        // A CONNECT has no body: what follows is the tunnel's.
        if head.method == .CONNECT { return finish(trailers: nil, upgrade: true, emit: emit) }
        let upgrade = framing.asksForUpgrade
        if framing.transferEncoding {
            state = .body(HTTP1BodyReader(.chunked, maximumTrailersSize: maximumHeadSize), upgrade: upgrade)
        } else if let length = framing.contentLength, length > 0 {
            state = .body(HTTP1BodyReader(.length(length)), upgrade: upgrade)
        } else {
            finish(trailers: nil, upgrade: upgrade, emit: emit)
        }
    }

    private mutating func finish(trailers: HTTPHeaders?, upgrade: Bool, emit: (Part) -> Void) {
        state = upgrade ? .upgraded : .head
        emit(.end(trailers))
    }

    // MARK: the head

    struct ParsedHead {
        /// Nil when only empty lines before a request line were read.
        var head: HTTPRequestHead?
        var framing: HTTP1HeadFraming
        /// Bytes read: the empty lines skipped, the request line, the headers and the empty line after them.
        var length: Int
        var skipped: Int
    }

    private static let space = UInt8(ascii: " ")
    /// "HTTP/1." as bytes loaded from memory (the eighth byte, the minor version, masked off).
    private static let versionPrefix = UInt64(littleEndian: 0x002E_312F_5054_5448)
    private static let versionMask = UInt64(littleEndian: 0x00FF_FFFF_FFFF_FFFF)

    /// The head at the start of `bytes`, or nil while its empty line has not arrived.
    static func parseHead(_ bytes: UnsafeRawBufferPointer, repeated: inout HTTP1RepeatedLines) throws -> ParsedHead? {
        // RFC 9112 2.2: empty lines before a request line are ignored.
        var skipped = 0
        while skipped < bytes.count, bytes[skipped] == UInt8(ascii: "\r") || bytes[skipped] == UInt8(ascii: "\n") {
            skipped += 1
        }
        if skipped > 0 { return ParsedHead(head: nil, framing: HTTP1HeadFraming(), length: skipped, skipped: skipped) }
        guard let lineEnd = HTTP1Syntax.lineEnd(in: bytes, from: 0) else { return nil }
        let line = UnsafeRawBufferPointer(rebasing: bytes[0..<lineEnd.contentEnd]).assumingMemoryBound(to: UInt8.self)
        // method SP request-target SP HTTP/1.x
        guard let methodEnd = line.firstIndex(of: space), methodEnd > 0 else {
            throw HTTP1ParseError(description: "invalid request line")
        }
        let method = try Self.method(UnsafeBufferPointer(rebasing: line[..<methodEnd]))
        let targetStart = methodEnd + 1
        var targetEnd = targetStart
        while targetEnd < line.count, isTargetByte(line[targetEnd]) { targetEnd += 1 }
        guard targetEnd > targetStart, targetEnd + 9 == line.count, line[targetEnd] == space,
              UnsafeRawPointer(line.baseAddress! + targetEnd + 1).loadUnaligned(as: UInt64.self) & versionMask == versionPrefix
        else {
            throw HTTP1ParseError(description: targetEnd < line.count && line[targetEnd] != space
                ? "invalid request target" : "invalid request line")
        }
        let minorByte = line[targetEnd + 8]
        guard minorByte == UInt8(ascii: "0") || minorByte == UInt8(ascii: "1") else {
            throw HTTP1ParseError(description: "unsupported HTTP version")
        }
        var framing = HTTP1HeadFraming()
        guard let fields = try HTTP1Syntax.parseFields(bytes, from: lineEnd.next, framing: &framing, repeated: &repeated) else { return nil }
        if framing.transferEncoding {
            if framing.contentLength != nil {
                throw HTTP1ParseError(description: "both content-length and transfer-encoding")
            }
            if !framing.chunkedOnly { throw unsupportedTransferEncoding }
        }
        let uri = String(decoding: UnsafeBufferPointer(rebasing: line[targetStart..<targetEnd]), as: UTF8.self)
        let head = HTTPRequestHead(version: HTTPVersion(major: 1, minor: Int(minorByte - UInt8(ascii: "0"))),
                                   method: method, uri: uri, headers: HTTPHeaders(fields.fields))
        return ParsedHead(head: head, framing: framing, length: fields.length, skipped: 0)
    }

    /// Where the empty line that ends a head ends, searching from `start` (no further back than
    /// needed to see a line end that the last search saw half of).
    static func headEnd(in bytes: UnsafeRawBufferPointer, from start: Int) -> Int? {
        var position = max(start, 0)
        while let line = HTTP1Syntax.lineEnd(in: bytes, from: position) {
            let next = line.next
            if next < bytes.count, bytes[next] == UInt8(ascii: "\n") { return next + 1 }
            if next + 1 < bytes.count, bytes[next] == UInt8(ascii: "\r"), bytes[next + 1] == UInt8(ascii: "\n") {
                return next + 2
            }
            position = next
        }
        return nil
    }

    /// A request target's bytes: anything visible (obs-text too), no space or control byte, and no
    /// `#`: Envoy refuses a fragment in a request's path (400).
    private static func isTargetByte(_ byte: UInt8) -> Bool {
        byte > 0x20 && byte != 0x7F && byte != UInt8(ascii: "#")
    }

    /// The methods NIO's `HTTPMethod` names (Envoy 1.40 refuses others, `QUERY` too, with 400);
    /// the common ones matched on their bytes.
    static func method(_ bytes: UnsafeBufferPointer<UInt8>) throws -> HTTPMethod {
        switch bytes.count {
        case 3 where bytes[0] == UInt8(ascii: "G") && bytes[1] == UInt8(ascii: "E") && bytes[2] == UInt8(ascii: "T"):
            return .GET
        case 4 where bytes.elementsEqual("POST".utf8):
            return .POST
        default:
            break
        }
        guard HTTP1HeaderValidation.isValidName(bytes) else { throw HTTP1ParseError(description: "invalid method") }
        let text = String(decoding: bytes, as: UTF8.self)
        let method = HTTPMethod(rawValue: text)
        if case .RAW = method { throw HTTP1ParseError(description: "invalid method") }
        return method
    }
}
