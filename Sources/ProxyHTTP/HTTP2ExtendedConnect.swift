import NIOCore
import NIOHPACK
import NIOHTTP2
import ProxyCore

/// WebSocket over HTTP/2 (RFC 8441) and CONNECT on one downstream stream, when `allow_connect` is
/// set. Sits before the stream's request reader, which knows nothing of `:protocol`: an extended
/// CONNECT (`:method CONNECT`, `:protocol websocket`) reaches the connection manager as the HTTP/1.1
/// upgrade Envoy makes of it upstream (`GET` with `upgrade` and `connection: upgrade`), a plain
/// CONNECT as HTTP/1.1 writes one. The stream's DATA is held back until the upstream has answered:
/// on its 101 (or the connection a terminated CONNECT opens) the stream becomes a byte tunnel
/// (`startTunnel`), on any other answer the held bytes are dropped as the request body of a refused
/// upgrade. A client's `connection` and `upgrade` are malformed on HTTP/2
/// (`HTTP2RequestHeaderValidation`, which this handler runs on the request before translating it),
/// so only this handler can put them on an HTTP/2 request.
final class HTTP2ExtendedConnect: ChannelDuplexHandler, @unchecked Sendable {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload
    typealias OutboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private enum State {
        /// Before the request's HEADERS, and for every stream that is not a CONNECT.
        case passThrough
        /// A CONNECT waiting for the upstream's answer; `ended` when the client sent END_STREAM.
        case holding(held: [HTTP2Frame.FramePayload], bytes: Int, ended: Bool)
        /// The upgrade was refused: the client's bytes are dropped, its END_STREAM still ends the request.
        case discarding
        /// The tunnel owns the stream's DATA.
        case tunnel
        /// The request was malformed; nothing more of it is read.
        case refused
    }

    /// More than this held before the upstream answers resets the stream.
    static let holdLimit = 1 << 20
    private var state = State.passThrough
    private var context: ChannelHandlerContext?
    private let malformed: HTTP2MalformedRequestPolicy
    /// The request's own HEADERS were checked (this handler checks them, before it translates a
    /// CONNECT's into fields HTTP/2 forbids; the request reader checks trailers).
    private var headChecked = false

    init(malformed: HTTP2MalformedRequestPolicy) {
        self.malformed = malformed
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    /// Lets go of the context, which holds this handler: the two would otherwise keep each other.
    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        if malformed.connectionClosing { state = .refused }
        switch state {
        case .passThrough:
            if !headChecked, case .headers(let frame) = payload {
                headChecked = true
                do {
                    try HTTP2RequestHeaderValidation.validateRequest(frame.headers, extendedConnect: malformed.extendedConnect)
                } catch {
                    state = .refused
                    malformed.refuse(context: context, error)
                    return
                }
            }
            if case .headers(let frame) = payload, let upgrade = Self.upgradeRequest(frame.headers) {
                state = .holding(held: [], bytes: 0, ended: frame.endStream)
                var translated = frame
                translated.headers = upgrade
                context.fireChannelRead(wrapInboundOut(.headers(translated)))
                return
            }
            context.fireChannelRead(data)
        case .holding(var held, var bytes, var ended):
            switch payload {
            case .data(let frame):
                bytes += frame.data.readableBytes
                ended = ended || frame.endStream
            case .headers(let frame):
                ended = ended || frame.endStream
            default:
                context.fireChannelRead(data)
                return
            }
            guard bytes <= Self.holdLimit else {
                state = .discarding
                context.close(promise: nil)
                return
            }
            held.append(payload)
            state = .holding(held: held, bytes: bytes, ended: ended)
        case .discarding:
            if case .data(let frame) = payload, frame.endStream {
                context.fireChannelRead(wrapInboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))))
            } else if case .headers(let frame) = payload, frame.endStream {
                context.fireChannelRead(data)
            }
        case .tunnel:
            context.fireChannelRead(data)
        case .refused:
            break
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        // A response other than the tunnel's 200 refuses the upgrade.
        if case .holding(_, _, let ended) = state, case .headers(let frame) = unwrapOutboundIn(data),
           frame.headers.first(name: ":status") != "200" || frame.endStream
        {
            state = .discarding
            if ended {
                context.fireChannelRead(wrapInboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))))
            }
        }
        context.write(data, promise: promise)
    }

    /// The upstream accepted: what the client sent so far goes on to the tunnel's end, which the
    /// caller has put just after this handler.
    func startTunnel() {
        guard let context, case .holding(let held, _, _) = state else { return }
        state = .tunnel
        for payload in held { context.fireChannelRead(wrapInboundOut(payload)) }
        if !held.isEmpty { context.fireChannelReadComplete() }
    }

    /// The HTTP/1.1 form of a CONNECT's headers, or nil for any other request. An extended CONNECT
    /// becomes an upgrade `GET`; a plain CONNECT (RFC 9113 §8.5) has no `:path`, which the request
    /// reader requires, so its authority stands in as the path, as HTTP/1.1 writes its target.
    static func upgradeRequest(_ headers: HPACKHeaders) -> HPACKHeaders? {
        guard headers.first(name: ":method") == "CONNECT" else { return nil }
        var translated = HPACKHeaders()
        translated.reserveCapacity(headers.count + 2)
        guard let proto = headers.first(name: ":protocol") else {
            guard let authority = headers.first(name: ":authority"), !headers.contains(name: ":path") else { return nil }
            translated.add(name: ":path", value: authority)
            translated.add(name: ":scheme", value: "http")
            translated.add(contentsOf: headers)
            return translated
        }
        for (name, value, indexing) in headers {
            switch name {
            case ":protocol": continue
            case ":method": translated.add(name: name, value: "GET", indexing: indexing)
            default: translated.add(name: name, value: value, indexing: indexing)
            }
        }
        translated.add(name: "upgrade", value: proto)
        translated.add(name: "connection", value: "upgrade")
        return translated
    }
}

/// The stream's end of a tunnel: DATA frames in as bytes, bytes out as DATA frames. The client's
/// END_STREAM is not passed on (Envoy does not half-close the upstream either); the stream ends
/// when the upstream closes, with a reset.
final class HTTP2StreamBytes: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .data(let frame) = unwrapInboundIn(data), case .byteBuffer(let bytes) = frame.data,
              bytes.readableBytes > 0
        else { return }
        context.fireChannelRead(wrapInboundOut(bytes))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data)
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(bytes)))), promise: promise)
    }
}
