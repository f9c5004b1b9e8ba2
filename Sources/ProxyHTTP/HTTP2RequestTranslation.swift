import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The request side of one downstream HTTP/2 stream: its frames become request parts handed to the
/// stream's connection manager directly, as the HTTP/1.1 parser hands its parts. In place of NIO's
/// HTTP/2-to-HTTP/1 codec, whose parts each took a pipeline hop, a box and a dynamic cast, and whose
/// head was rebuilt from the header block by name lookups (BENCHMARKS.md, h2c). The request
/// is what NIO's codec made of it: `host` from `:authority`, and a request of a method that carries
/// a body and has no `content-length` is `transfer-encoding: chunked` (or `content-length: 0` when
/// its HEADERS end the stream), so the rest of the proxy sees HTTP/1.1's framing. It checks the
/// trailers, and the request's header block unless `HTTP2ExtendedConnect` has checked it (before
/// translating it), with `HTTP2RequestHeaderValidation`, and that the body is as long as its
/// `content-length` says (RFC 9113 § 8.1.1; NIO's own check, off on downstream connections, ran on
/// every response too). Used by a stream with a channel of its own (`HTTP2StreamRequestReader`) and
/// by one without (`HTTP2DownstreamStream`).
struct HTTP2RequestTranslation {
    /// False behind `HTTP2ExtendedConnect`, which checks the block it translates itself.
    private let validatesRequestHead: Bool
    private let extendedConnect: Bool
    private var headReceived = false
    /// The request's `content-length`, and the body bytes received so far.
    private var declaredLength: Int?
    private var receivedLength = 0

    init(validatesRequestHead: Bool, extendedConnect: Bool) {
        self.validatesRequestHead = validatesRequestHead
        self.extendedConnect = extendedConnect
    }

    /// Hands what `payload` carries of the request to `manager`; throws when the request is malformed.
    mutating func receive(_ payload: HTTP2Frame.FramePayload, manager: HTTPConnectionManager) throws {
        switch payload {
        case .headers(let frame):
            if headReceived {
                try HTTP2RequestHeaderValidation.validateTrailers(frame.headers)
                try checkLength(ended: true)
                manager.receive(.end(Self.regularHeaders(frame.headers)))
                return
            }
            headReceived = true
            if validatesRequestHead {
                try HTTP2RequestHeaderValidation.validateRequest(frame.headers, extendedConnect: extendedConnect)
            }
            let head = try Self.requestHead(frame.headers, endStream: frame.endStream, contentLength: &declaredLength)
            try checkLength(ended: frame.endStream)
            manager.receive(.head(head, keepAlive: true))
            if frame.endStream { manager.receive(.end(nil)) }
        case .data(let frame):
            guard case .byteBuffer(let bytes) = frame.data else { return }
            receivedLength += bytes.readableBytes
            try checkLength(ended: frame.endStream)
            if bytes.readableBytes > 0 { manager.receive(.body(bytes)) }
            if frame.endStream { manager.receive(.end(nil)) }
        default:
            break
        }
    }

    /// More body than `content-length` says, or, once the request ended, less.
    private func checkLength(ended: Bool) throws {
        guard let declaredLength else { return }
        if receivedLength > declaredLength || (ended && receivedLength != declaredLength) {
            throw TranslationError.contentLengthMismatch
        }
    }

    enum TranslationError: Error, Equatable {
        case missingPseudoHeader(String)
        /// Not a decimal number, or two that differ.
        case invalidContentLength
        case contentLengthMismatch
    }

    /// The HTTP/1.1 form of a request's header block, as NIO's codec makes it (version 2.0), and
    /// the block's `content-length`.
    static func requestHead(_ block: HPACKHeaders, endStream: Bool, contentLength: inout Int?) throws -> HTTPRequestHead {
        var method: String?
        var path: String?
        var authority: String?
        var hasHost = false
        var hasContentLength = false
        for (name, value, _) in block {
            guard let first = name.utf8.first else { continue }
            if first == UInt8(ascii: ":") {
                switch name {
                case ":method": method = value
                case ":path": path = value
                case ":authority": authority = value
                default: break
                }
            } else if name == "host" {
                hasHost = true
            } else if name == "content-length" {
                hasContentLength = true
                let length = try Self.contentLength(value)
                if let contentLength, contentLength != length { throw TranslationError.invalidContentLength }
                contentLength = length
            }
        }
        guard let method else { throw TranslationError.missingPseudoHeader(":method") }
        guard let path else { throw TranslationError.missingPseudoHeader(":path") }
        guard authority != nil || hasHost else { throw TranslationError.missingPseudoHeader(":authority") }
        let httpMethod = HTTPMethod(rawValue: method)
        var headers: [(String, String)] = []
        headers.reserveCapacity(block.count)
        if !hasHost, let authority { headers.append(("host", authority)) }
        if !hasContentLength, Self.mayHaveBody(httpMethod) {
            headers.append(endStream ? ("content-length", "0") : ("transfer-encoding", "chunked"))
        }
        appendRegularFields(of: block, to: &headers)
        return HTTPRequestHead(version: .http2, method: httpMethod, uri: path, headers: HTTPHeaders(headers))
    }

    /// A `content-length` value: digits, or a list of the same number (RFC 9110 § 8.6).
    static func contentLength(_ value: String) throws -> Int {
        var length: Int?
        for item in value.utf8.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            let isSpace = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
            let digits = item.drop(while: isSpace).reversed().drop(while: isSpace)
            guard !digits.isEmpty, digits.count <= 18 else { throw TranslationError.invalidContentLength }
            var number = 0
            for byte in digits.reversed() {
                guard byte &- UInt8(ascii: "0") < 10 else { throw TranslationError.invalidContentLength }
                number = number * 10 + Int(byte &- UInt8(ascii: "0"))
            }
            guard length == nil || length == number else { throw TranslationError.invalidContentLength }
            length = number
        }
        guard let length else { throw TranslationError.invalidContentLength }
        return length
    }

    /// Trailers: the block without pseudo-header fields.
    static func regularHeaders(_ block: HPACKHeaders) -> HTTPHeaders {
        var headers: [(String, String)] = []
        headers.reserveCapacity(block.count)
        appendRegularFields(of: block, to: &headers)
        return HTTPHeaders(headers)
    }

    private static func appendRegularFields(of block: HPACKHeaders, to headers: inout [(String, String)]) {
        for (name, value, _) in block where name.utf8.first != UInt8(ascii: ":") {
            headers.append((name, value))
        }
    }

    /// Methods whose requests are expected to carry a body unless they say otherwise.
    private static func mayHaveBody(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .DELETE, .CONNECT, .TRACE: false
        default: true
        }
    }
}

extension HTTPVersion {
    static let http2 = HTTPVersion(major: 2, minor: 0)
}
