import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyUpstream
import Testing
@testable import ProxyHTTP

/// An upstream HTTP/1.1 connection as NIOUpstreamConnector builds it: the connection handler encodes
/// requests and tells NIO's response decoder each request's method.
@Suite struct UpstreamRequestEncodingTests {
    final class Recorder: UpstreamResponseDelegate {
        var events: [String] = []
        func upstreamResponseHead(_ head: HTTPResponseHead) { events.append("head \(head.status.code)") }
        func upstreamResponseBody(_ body: ByteBuffer) { events.append("body \(String(buffer: body))") }
        func upstreamResponseEnd(_ trailers: HTTPHeaders?) { events.append("end") }
        func upstreamReadComplete() {}
        func upstreamConnectionLost() { events.append("lost") }
        func upstreamProtocolError() { events.append("protocol error") }
        func upstreamWritabilityChanged(_ writable: Bool) {}
    }

    let channel = EmbeddedChannel()
    let handler = UpstreamConnectionHandler()
    let recorder = Recorder()

    init() throws {
        let decoder = UpstreamResponseDecoder(leftOverBytesStrategy: .forwardBytes)
        handler.encodeRequests(with: HTTP1RequestEncoding.makeEncoder(), for: decoder.decoder)
        handler.delegate = recorder
        try channel.pipeline.syncOperations.addHandlers([ByteToMessageHandler(decoder), handler])
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

    @Test func aHeaderThatMayNotBeSentClosesTheConnection() throws {
        request(.GET, headers: ["host": "web", "x-bad": "a\r\nb"])
        #expect(try channel.writtenText() == "")
        #expect(!channel.isActive)
    }
}
