import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import ProxyCore
import Testing
@testable import ProxyHTTP

/// RFC 8441's extended CONNECT turned into the HTTP/1.1 upgrade the connection manager proxies, a
/// plain CONNECT made readable to NIO's codec, and the client's early bytes held until the tunnel.
@Suite struct HTTP2ExtendedConnectTests {
    static let connect: HPACKHeaders = [":method": "CONNECT", ":protocol": "websocket", ":scheme": "https",
                                        ":path": "/chat", ":authority": "ws.test", "sec-websocket-version": "13"]

    static func translator(streamError: Bool = true) -> HTTP2ExtendedConnect {
        HTTP2ExtendedConnect(malformed: HTTP2MalformedRequestPolicy(
            streamError: streamError, extendedConnect: true,
            messagingErrors: Counter(name: "http2.rx_messaging_error", tags: StatTags(extractedName: "http2.rx_messaging_error", tags: []))))
    }

    func inboundPayloads(_ channel: EmbeddedChannel) throws -> [HTTP2Frame.FramePayload] {
        var payloads: [HTTP2Frame.FramePayload] = []
        while let payload = try channel.readInbound(as: HTTP2Frame.FramePayload.self) { payloads.append(payload) }
        return payloads
    }

    static func data(_ text: String, end: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end))
    }

    static func response(_ status: String, end: Bool = false) -> HTTP2Frame.FramePayload {
        .headers(.init(headers: [":status": status], endStream: end))
    }

    @Test func anExtendedConnectBecomesAnUpgradeGET() throws {
        let translated = try #require(HTTP2ExtendedConnect.upgradeRequest(Self.connect))
        #expect(translated.first(name: ":method") == "GET")
        #expect(!translated.contains(name: ":protocol"))
        #expect(translated.first(name: ":path") == "/chat")
        #expect(translated.first(name: "upgrade") == "websocket")
        #expect(translated.first(name: "connection") == "upgrade")
        #expect(translated.first(name: "sec-websocket-version") == "13")
    }

    @Test func otherRequestsPassUntouched() throws {
        #expect(HTTP2ExtendedConnect.upgradeRequest([":method": "GET", ":path": "/", ":scheme": "http"]) == nil)
        let channel = EmbeddedChannel(handler: Self.translator())
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: [":method": "POST", ":path": "/", ":scheme": "http"])))
        try channel.writeInbound(Self.data("body"))
        #expect(try inboundPayloads(channel).count == 2)
    }

    @Test func aPlainConnectGetsItsAuthorityAsThePath() throws {
        let translated = try #require(HTTP2ExtendedConnect.upgradeRequest([":method": "CONNECT", ":authority": "a:443"]))
        #expect(translated.first(name: ":method") == "CONNECT")
        #expect(translated.first(name: ":path") == "a:443")
        #expect(translated.first(name: ":scheme") == "http")
        #expect(!translated.contains(name: "upgrade"))
    }

    @Test func earlyBytesWaitForTheTunnel() throws {
        let handler = Self.translator()
        let channel = EmbeddedChannel(handler: handler)
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: Self.connect)))
        #expect(try inboundPayloads(channel).count == 1)
        try channel.writeInbound(Self.data("early"))
        #expect(try inboundPayloads(channel).isEmpty)
        try channel.writeOutbound(Self.response("200"))
        handler.startTunnel()
        let released = try inboundPayloads(channel)
        guard case .data(let frame) = try #require(released.first), case .byteBuffer(let bytes) = frame.data else {
            Issue.record("expected the held DATA, got \(released)")
            return
        }
        #expect(String(buffer: bytes) == "early")
        try channel.writeInbound(Self.data("later"))
        #expect(try inboundPayloads(channel).count == 1)
    }

    /// The translator keeps its context (to release held bytes later); a finished stream must still free it.
    @Test func aClosedStreamLetsGoOfItsHandler() throws {
        weak var released: HTTP2ExtendedConnect?
        do {
            let handler = Self.translator()
            released = handler
            let channel = EmbeddedChannel(handler: handler)
            try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: Self.connect)))
            try channel.writeInbound(Self.data("early"))
            _ = try channel.finish(acceptAlreadyClosed: true)
        }
        #expect(released == nil, "the extended-CONNECT translator of a closed stream is freed")
    }

    @Test func aRefusedUpgradeDropsTheBytesButKeepsTheEnd() throws {
        let channel = EmbeddedChannel(handler: Self.translator())
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: Self.connect)))
        _ = try inboundPayloads(channel)
        try channel.writeInbound(Self.data("early", end: true))
        try channel.writeOutbound(Self.response("403"))
        let after = try inboundPayloads(channel)
        #expect(after.count == 1)
        guard case .data(let end) = try #require(after.first) else {
            Issue.record("expected an empty final DATA, got \(after)")
            return
        }
        #expect(end.endStream && end.data.readableBytes == 0)
    }

    /// The translator checks the request as the client sent it, before it adds `connection` and
    /// `upgrade`: a CONNECT with a `:path` (not an extended one) is malformed and goes no further;
    /// the stream is reset after the read and what follows is dropped.
    @Test func aMalformedConnectIsRefusedBeforeTranslation() throws {
        let handler = Self.translator()
        let channel = EmbeddedChannel(handler: handler)
        // The reset policy passes the error on as NIO passes a stream error; EmbeddedChannel rethrows it.
        #expect(throws: HTTP2RequestHeaderValidation.Failure.pseudoHeaderNotAllowed(":path")) {
            try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(
                headers: [":method": "CONNECT", ":authority": "a:443", ":path": "/"])))
        }
        try channel.writeInbound(Self.data("bytes", end: true))
        #expect(try inboundPayloads(channel).isEmpty)
        channel.embeddedEventLoop.run()
        guard case .rstStream(let code)? = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("expected RST_STREAM")
            return
        }
        #expect(code == .protocolError)
    }
}
