import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyCore
import Testing
@testable import ProxyHTTP

/// The request parser in front of the connection manager, on an EmbeddedChannel: bytes in, bytes
/// out. Requests outside `/api` have no route: they get a 404 at once, while their parse is under
/// way; those under it go to an in-memory upstream.
@Suite struct HTTP1RequestParserHandlerTests {
    let test: HTTPConnectionManagerTests
    var channel: EmbeddedChannel { test.downstream }

    init() throws {
        test = try HTTPConnectionManagerTests(pathPrefix: "/api", parsesBytes: true)
    }

    func written() throws -> String {
        var text = ""
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { text += String(buffer: buffer) }
        return text
    }

    /// Each response's status line (a body may run straight into the next response's).
    func statusLines(_ text: String) -> [Substring] {
        text.ranges(of: "HTTP/1.1 ").map { start in
            text[start.lowerBound...].prefix { $0 != "\r\n" }
        }
    }

    final class ReadCompleteCounter: ChannelInboundHandler {
        typealias InboundIn = NIOAny
        var count = 0
        func channelReadComplete(context: ChannelHandlerContext) { count += 1 }
    }

    /// The end of a read stops at the parser: the connection manager after it has no use for it, and
    /// each read would otherwise pay two pipeline hops for nothing.
    @Test func theEndOfAReadGoesNoFurtherThanTheParser() throws {
        let counter = ReadCompleteCounter()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"))
        #expect(statusLines(try written()) == ["HTTP/1.1 404 Not Found"])
        #expect(counter.count == 0)
    }

    @Test func anUpgradeThatEndsInsideTheParseLetsTheNextRequestBeRead() throws {
        // The h2c upgrade is ignored and the first request answered before its read is parsed to the
        // end: the parser must go on with the pipelined request after it, once its parse has returned.
        try channel.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n"
            + "Connection: Upgrade, HTTP2-Settings\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n"))
        let text = try written()
        #expect(statusLines(text) == ["HTTP/1.1 404 Not Found", "HTTP/1.1 404 Not Found"], "\(text)")
        #expect(channel.isActive)
    }

    @Test(arguments: [
        ("GET / HTTP/1.1\r\nno colon\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501 Not Implemented"),
        ("GET / HTTP/1.1\r\nx-big: " + String(repeating: "a", count: 61 * 1024) + "\r\n\r\n",
         "HTTP/1.1 431 Request Header Fields Too Large"),
    ])
    func aRequestThatCannotBeParsedIsAnsweredAndTheConnectionCloses(request: String, status: String) throws {
        try channel.writeInbound(ByteBuffer(string: request))
        let text = try written()
        #expect(text.hasPrefix(status + "\r\n"), "\(text)")
        #expect(text.contains("\r\nconnection: close\r\n"))
        #expect(!channel.isActive)
        #expect(test.counter("http.ingress_http.downstream_cx_protocol_error") == 1)
    }

    @Test func aMalformedRequestAfterAnAnsweredOneGets400() throws {
        // The first request's 404 went out whole, inside the parse; the second is malformed: 400, then close.
        try channel.writeInbound(ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/9.9\r\n\r\n"))
        let text = try written()
        #expect(statusLines(text) == ["HTTP/1.1 404 Not Found", "HTTP/1.1 400 Bad Request"], "\(text)")
        #expect(!channel.isActive)
    }

    @Test func aPipelinedRequestThatCannotBeParsedIsAnsweredAfterTheOnesBeforeIt() throws {
        try channel.writeInbound(ByteBuffer(string: "GET /api/a HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/9.9\r\n\r\n"))
        // The first request is with the upstream: nothing is answered yet, and the connection stays.
        #expect(try written().isEmpty)
        #expect(channel.isActive)
        let upstream = try #require(test.connector.channels.first)
        try upstream.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(
            version: .http1_1, status: .ok, headers: ["content-length": "2"])))
        try upstream.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "ok")))
        try upstream.writeInbound(HTTPClientResponsePart.end(nil))
        let text = try written()
        #expect(statusLines(text) == ["HTTP/1.1 200 OK", "HTTP/1.1 400 Bad Request"], "\(text)")
        #expect(!channel.isActive)
    }
}
