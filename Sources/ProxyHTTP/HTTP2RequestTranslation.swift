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
/// translating it), with `HTTP2RequestHeaderValidation`. Used by a stream with a channel of its own
/// (`HTTP2StreamRequestReader`) and by one without (`HTTP2DownstreamStream`).
struct HTTP2RequestTranslation {
    /// False behind `HTTP2ExtendedConnect`, which checks the block it translates itself.
    private let validatesRequestHead: Bool
    private let extendedConnect: Bool
    private var headReceived = false

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
                manager.receive(.end(Self.regularHeaders(frame.headers)))
                return
            }
            headReceived = true
            if validatesRequestHead {
                try HTTP2RequestHeaderValidation.validateRequest(frame.headers, extendedConnect: extendedConnect)
            }
            let head = try Self.requestHead(frame.headers, endStream: frame.endStream)
            manager.receive(.head(head, keepAlive: true))
            if frame.endStream { manager.receive(.end(nil)) }
        case .data(let frame):
            guard case .byteBuffer(let bytes) = frame.data else { return }
            if bytes.readableBytes > 0 { manager.receive(.body(bytes)) }
            if frame.endStream { manager.receive(.end(nil)) }
        default:
            break
        }
    }

    enum TranslationError: Error, Equatable {
        case missingPseudoHeader(String)
    }

    /// The HTTP/1.1 form of a request's header block, as NIO's codec makes it (version 2.0).
    static func requestHead(_ block: HPACKHeaders, endStream: Bool) throws -> HTTPRequestHead {
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
