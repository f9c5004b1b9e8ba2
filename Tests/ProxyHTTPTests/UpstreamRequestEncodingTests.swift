import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyUpstream
import Testing
@testable import ProxyHTTP

/// An upstream HTTP/1.1 connection as NIOUpstreamConnector builds it: the connection handler encodes
/// requests and tells the response parser each request's method.
@Suite struct UpstreamRequestEncodingTests {
    final class Recorder: UpstreamResponseDelegate {
        var events: [String] = []
        /// Runs as a response ends, as a pool hands the connection on or a stream closes it.
        var onEnd: (() -> Void)?
        func upstreamResponseHead(_ head: HTTPResponseHead) { events.append("head \(head.status.code)") }
        func upstreamResponseBody(_ body: ByteBuffer) { events.append("body \(String(buffer: body))") }
        func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
            events.append("end")
            let run = onEnd
            onEnd = nil
            run?()
        }
        var readCompletes = 0
        func upstreamReadComplete() { readCompletes += 1 }
        func upstreamConnectionLost() { events.append("lost") }
        func upstreamProtocolError() { events.append("protocol error") }
        func upstreamWritabilityChanged(_ writable: Bool) {}
    }

    let channel = EmbeddedChannel()
    let handler = UpstreamConnectionHandler()
    let recorder = Recorder()

    init() throws {
        let parser = UpstreamResponseParserHandler(connection: handler)
        handler.encodeRequests(with: HTTP1RequestEncoding.makeEncoder(), for: parser)
        handler.delegate = recorder
        try channel.pipeline.syncOperations.addHandlers([parser, handler])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func request(_ method: HTTPMethod, headers: HTTPHeaders = ["host": "web"]) {
        handler.write(.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/x", headers: headers)))
        handler.write(.end(nil))
        handler.flush()
    }

    @Test func encodesTheRequest() throws {
        request(.GET)
        #expect(try channel.writtenText() == "GET /x HTTP/1.1\r\nhost: web\r\n\r\n")
    }

    /// The decoder knows the request was a HEAD: a content-length with no body bytes ends the response.
    @Test func aResponseToHEADHasNoBody() throws {
        request(.HEAD)
        _ = try channel.writtenText()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"))
        request(.GET)
        _ = try channel.writtenText()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"))
        #expect(recorder.events == ["head 200", "end", "head 200", "body ok", "end"])
    }

    /// A head cut across reads is parsed once it is whole; after a 101 the parser, removed for the
    /// tunnel, hands on the bytes that came after the head.
    @Test func aHeadAcrossReadsAndTheBytesPastA101() throws {
        request(.GET, headers: ["host": "web", "upgrade": "websocket", "connection": "upgrade"])
        _ = try channel.writtenText()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 101 Switching Protocols\r\nUpg"))
        #expect(recorder.events.isEmpty)
        try channel.writeInbound(ByteBuffer(string: "rade: websocket\r\n\r\nearly"))
        #expect(recorder.events == ["head 101", "end"])
        let tunnelEnd = BytesRecorder()
        let sync = channel.pipeline.syncOperations
        let parser = try sync.handler(type: UpstreamResponseParserHandler.self)
        try sync.addHandler(tunnelEnd, position: .after(parser))
        sync.removeHandler(parser, promise: nil)
        channel.embeddedEventLoop.run()
        try channel.writeInbound(ByteBuffer(string: " and late"))
        #expect(tunnelEnd.text == "early and late")
        #expect(tunnelEnd.readCompletes == 1)
    }

    /// Malformed response bytes close the connection; the request learns it lost the connection.
    @Test func aMalformedResponseClosesTheConnection() throws {
        request(.GET)
        _ = try channel.writtenText()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(recorder.events == ["lost"])
    }

    /// The next request starts from the end of a response, while the read that ended it is still
    /// being parsed: the response after it is read as that request's (a HEAD's: no body).
    @Test func theNextRequestCanStartFromAResponsesEnd() throws {
        request(.GET)
        _ = try channel.writtenText()
        recorder.onEnd = { [self] in request(.HEAD) }
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            + "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"))
        #expect(recorder.events == ["head 200", "body ok", "end", "head 200", "end"])
    }

    /// A response's end can close the connection in the middle of a read: what follows in that
    /// read is not a response of this connection's any more.
    @Test func aCloseFromAResponsesEnd() throws {
        request(.GET)
        _ = try channel.writtenText()
        recorder.onEnd = { [channel] in channel.close(promise: nil) }
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            + "HTTP/1.0 200 OK\r\n\r\nafter"))
        channel.embeddedEventLoop.run()
        #expect(!channel.isActive)
        #expect(recorder.events == ["head 200", "body ok", "end", "lost"])
    }

    final class BytesRecorder: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var text = ""
        var readCompletes = 0
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { text += String(buffer: unwrapInboundIn(data)) }
        func channelReadComplete(context: ChannelHandlerContext) { readCompletes += 1 }
    }

    /// The end of each read reaches the response's delegate once, straight from the parser, and goes
    /// no further down the pipeline (nothing there uses it).
    @Test func eachReadsEndReachesTheDelegateOnce() throws {
        let after = BytesRecorder()
        try channel.pipeline.syncOperations.addHandler(after)
        request(.GET)
        _ = try channel.writtenText()
        try channel.writeInbound(ByteBuffer(string: "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\no"))
        try channel.writeInbound(ByteBuffer(string: "k"))
        #expect(recorder.events == ["head 200", "body o", "body k", "end"])
        #expect(recorder.readCompletes == 2)
        #expect(after.readCompletes == 0)
    }

    @Test func aHeaderThatMayNotBeSentClosesTheConnection() throws {
        request(.GET, headers: ["host": "web", "x-bad": "a\r\nb"])
        #expect(try channel.writtenText() == "")
        #expect(!channel.isActive)
    }
}
