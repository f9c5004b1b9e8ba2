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

    /// Envoy's default `max_response_headers_kb`: the status line and headers.
    static let maximumHeadSize = HTTP1Syntax.maximumHeadSize

    typealias ParseError = HTTP1ParseError

    private enum State {
        case head
        case body(HTTP1BodyReader)
        /// After a 101 or a CONNECT's 2xx: the rest of the bytes are not HTTP.
        case tunnel
        case failed
    }

    private var state = State.head
    /// The last response's header lines, which the next response's mostly repeat.
    private var repeatedLines = HTTP1RepeatedLines()

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
                let parsed = try buffer.withUnsafeReadableBytes { try Self.parseHead($0, repeated: &repeatedLines) }
                guard let parsed, parsed.length <= Self.maximumHeadSize else {
                    if buffer.readableBytes > Self.maximumHeadSize { try fail("response headers too large") }
                    return
                }
                buffer.moveReaderIndex(forwardBy: parsed.length)
                begin(parsed, request: request(), emit: emit)
            case .body(var reader):
                // The reader is taken out of the state while it reads, so it is not copied on write.
                state = .failed
                let progress = try reader.read(&buffer) { emit(.body($0)) }
                switch progress {
                case .needMore:
                    state = .body(reader)
                    return
                case .complete(let trailers):
                    finish(trailers: trailers.map(HTTPHeaders.init), emit: emit)
                }
            case .tunnel, .failed:
                return
            }
        }
    }

    /// The connection's input ended. A body read until the close is complete (true, and its end is
    /// emitted); anything else cut short is not.
    mutating func inputClosed(emit: (Part) -> Void) -> Bool {
        guard case .body(let reader) = state, reader.endsWithConnection else { return false }
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
        if request == .head || code == 204 || code == 304 || parsed.framing.contentLength == 0 {
            finish(trailers: nil, emit: emit)
        } else if parsed.framing.transferEncoding {
            state = .body(HTTP1BodyReader(parsed.framing.chunked ? .chunked : .untilClose))
        } else if let length = parsed.framing.contentLength {
            state = .body(HTTP1BodyReader(.length(length)))
        } else {
            state = .body(HTTP1BodyReader(.untilClose))
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

    struct ParsedHead {
        var head: HTTPResponseHead
        var framing: HTTP1HeadFraming
        /// Bytes of the status line, the headers and the empty line after them.
        var length: Int
    }

    private static let space = UInt8(ascii: " ")
    /// "HTTP" as four bytes loaded from memory.
    private static let httpPrefix = UInt32(littleEndian: 0x5054_5448)

    /// The head at the start of `bytes`, or nil while its empty line has not arrived.
    static func parseHead(_ bytes: UnsafeRawBufferPointer, repeated: inout HTTP1RepeatedLines) throws -> ParsedHead? {
        guard let statusEnd = HTTP1Syntax.lineEnd(in: bytes, from: 0) else { return nil }
        let line = UnsafeRawBufferPointer(rebasing: bytes[0..<statusEnd.contentEnd])
        // HTTP/1.x SP 3DIGIT [SP reason]
        let isDigit = HTTP1Syntax.isDigit
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
        var framing = HTTP1HeadFraming()
        guard let fields = try HTTP1Syntax.parseFields(bytes, from: statusEnd.next, framing: &framing, repeated: &repeated) else { return nil }
        if framing.transferEncoding, framing.contentLength != nil {
            throw ParseError(description: "both content-length and transfer-encoding")
        }
        let head = HTTPResponseHead(version: HTTPVersion(major: 1, minor: minor),
                                    status: HTTPResponseStatus(statusCode: code, reasonPhrase: reason),
                                    headers: HTTPHeaders(fields.fields))
        return ParsedHead(head: head, framing: framing, length: fields.length)
    }
}
