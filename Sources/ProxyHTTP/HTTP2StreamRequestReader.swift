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
/// trailers, and the request's header block unless `HTTP2ExtendedConnect` sits before it (which
/// checks the block before translating it), with `HTTP2RequestHeaderValidation`; a malformed
/// request is refused as `malformed` says.
final class HTTP2StreamRequestReader: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let manager: HTTPConnectionManager
    private let malformed: HTTP2MalformedRequestPolicy
    /// False behind `HTTP2ExtendedConnect`, which checks the block it translates itself.
    private let validatesRequestHead: Bool
    private var headReceived = false
    private var refused = false

    init(manager: HTTPConnectionManager, malformed: HTTP2MalformedRequestPolicy, validatesRequestHead: Bool = true) {
        self.manager = manager
        self.malformed = malformed
        self.validatesRequestHead = validatesRequestHead
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused, !malformed.connectionClosing else { return }
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            if headReceived {
                do {
                    try HTTP2RequestHeaderValidation.validateTrailers(frame.headers)
                } catch {
                    refuse(context: context, error)
                    return
                }
                manager.receive(.end(Self.regularHeaders(frame.headers)))
                return
            }
            headReceived = true
            do {
                if validatesRequestHead {
                    try HTTP2RequestHeaderValidation.validateRequest(frame.headers, extendedConnect: malformed.extendedConnect)
                }
                let head = try Self.requestHead(frame.headers, endStream: frame.endStream)
                manager.receive(.head(head, keepAlive: true))
                if frame.endStream { manager.receive(.end(nil)) }
            } catch {
                refuse(context: context, error)
            }
        case .data(let frame):
            guard case .byteBuffer(let bytes) = frame.data else { return }
            if bytes.readableBytes > 0 { manager.receive(.body(bytes)) }
            if frame.endStream { manager.receive(.end(nil)) }
        default:
            break
        }
    }

    private func refuse(context: ChannelHandlerContext, _ error: any Error) {
        refused = true
        malformed.refuse(context: context, error)
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
