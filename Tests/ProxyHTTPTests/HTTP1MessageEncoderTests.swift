import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyCore
import Testing
@testable import ProxyHTTP

/// Our HTTP/1.x encoders write what NIO's encoders write, byte for byte, in fewer buffers.
@Suite struct HTTP1MessageEncoderTests {
    /// Writes `parts`, flushes, and returns the buffers that reached the socket.
    func encode<Part>(_ parts: [Part], with handler: any ChannelHandler) throws -> [ByteBuffer] {
        let channel = EmbeddedChannel(handler: handler)
        for part in parts { channel.write(part, promise: nil) }
        channel.flush()
        var written: [ByteBuffer] = []
        while let buffer = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = buffer { written.append(bytes) }
        }
        _ = try? channel.finish()
        return written
    }

    func joined(_ buffers: [ByteBuffer]) -> String { buffers.map { String(buffer: $0) }.joined() }

    static func response(_ status: HTTPResponseStatus, _ headers: [(String, String)], version: HTTPVersion = .http1_1,
                         body: String? = nil, trailers: HTTPHeaders? = nil) -> [HTTPServerResponsePart] {
        var parts: [HTTPServerResponsePart] = [.head(HTTPResponseHead(version: version, status: status,
                                                                      headers: HTTPHeaders(headers)))]
        if let body { parts.append(.body(.byteBuffer(ByteBuffer(string: body)))) }
        parts.append(.end(trailers))
        return parts
    }

    static let responses: [[HTTPServerResponsePart]] = [
        response(.ok, [("content-length", "5"), ("x-a", "1")], body: "hello"),
        response(.ok, [("x-a", "1")], body: "chunky"),
        response(.ok, [("Transfer-Encoding", "chunked"), ("Content-Length", "3")], body: "abc"),
        response(.ok, [("server", "s")], body: "t", trailers: ["grpc-status": "0", "grpc-message": "ok"]),
        response(.noContent, [("content-length", "0"), ("transfer-encoding", "chunked"), ("x", "y")]),
        response(.notModified, [("etag", "\"e\"")]),
        response(.ok, [("x", "1")], version: .http1_0, body: "old"),
        response(.custom(code: 299, reasonPhrase: "Odd"), [("content-length", "0")]),
        response(.serviceUnavailable, [("content-length", "19")], body: "no healthy upstream"),
    ]

    @Test(arguments: responses)
    func responsesMatchNIOByteForByte(_ parts: [HTTPServerResponsePart]) throws {
        let ours = try encode(parts, with: HTTP1ResponseEncoder())
        let nio = try encode(parts, with: HTTPResponseEncoder())
        #expect(joined(ours) == joined(nio))
        // Head, body and end leave together.
        #expect(ours.count == 1)
    }

    static func request(_ method: HTTPMethod, _ headers: [(String, String)], body: String? = nil) -> [HTTPClientRequestPart] {
        var parts: [HTTPClientRequestPart] = [.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/p?q=1",
                                                                    headers: HTTPHeaders(headers)))]
        if let body { parts.append(.body(.byteBuffer(ByteBuffer(string: body)))) }
        parts.append(.end(nil))
        return parts
    }

    static let requests: [[HTTPClientRequestPart]] = [
        request(.GET, [("host", "example.com"), ("x-request-id", "abc")]),
        request(.GET, [("host", "h"), ("transfer-encoding", "chunked")], body: "b"),
        request(.POST, [("host", "h")], body: "form=1"),
        request(.POST, [("host", "h"), ("content-length", "6"), ("transfer-encoding", "chunked")], body: "form=1"),
        request(.PUT, [("host", "h"), ("content-length", "0")]),
        request(.TRACE, [("host", "h"), ("content-length", "0")]),
        request(.RAW(value: "PURGE"), [("host", "h")]),
    ]

    @Test(arguments: requests)
    func requestsMatchNIOByteForByte(_ parts: [HTTPClientRequestPart]) throws {
        let ours = try encode(parts, with: HTTP1RequestEncoder())
        let nio = try encode(parts, with: HTTPRequestEncoder())
        #expect(joined(ours) == joined(nio))
    }

    @Test func aLargeBodyLeavesAsItsOwnBuffer() throws {
        let body = String(repeating: "x", count: HTTP1OutboundBuffer.copiedBodyLimit + 1)
        let parts = Self.response(.ok, [("x-a", "1")], body: body)
        let ours = try encode(parts, with: HTTP1ResponseEncoder())
        #expect(joined(ours) == joined(try encode(parts, with: HTTPResponseEncoder())))
        // Head and chunk size; the body itself; its CRLF with the last chunk.
        #expect(ours.count == 3)
        #expect(ours[1].readableBytes == body.utf8.count)
    }

    @Test func aHeaderThatCouldSplitTheMessageIsRefused() throws {
        let channel = EmbeddedChannel(handler: HTTP1ResponseEncoder())
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: ["x-a": "1\r\nset-cookie: evil"])
        let written = channel.write(HTTPServerResponsePart.head(head))
        channel.flush()
        #expect(throws: HTTPParserError.invalidHeaderToken) { try written.wait() }
        #expect(throws: HTTPParserError.invalidHeaderToken) { try channel.throwIfErrorCaught() }
        #expect(try channel.readOutbound(as: IOData.self) == nil)
        // Nothing is sent after it either.
        let later = channel.write(HTTPServerResponsePart.end(nil))
        #expect(throws: HTTPParserError.invalidHeaderToken) { try later.wait() }
        _ = try? channel.finish()
    }

    static func isValidName(_ name: String) -> Bool {
        Array(name.utf8).withUnsafeBufferPointer(HTTP1HeaderValidation.isValidName)
    }

    static func isValidValue(_ value: String) -> Bool {
        Array(value.utf8).withUnsafeBufferPointer(HTTP1HeaderValidation.isValidValue)
    }

    @Test func badNamesAndTrailersAreRefused() throws {
        #expect(!Self.isValidName("bad name"))
        #expect(!Self.isValidName(""))
        #expect(Self.isValidName("x-Custom_1"))
        #expect(Self.isValidValue("a\tb ü"))
        #expect(!Self.isValidValue("a\u{7F}"))
        let parts = Self.response(.ok, [], body: "b", trailers: ["x": "a\nb"])
        let channel = EmbeddedChannel(handler: HTTP1ResponseEncoder())
        for part in parts.dropLast() { channel.write(part, promise: nil) }
        let end = channel.write(parts.last!)
        #expect(throws: HTTPParserError.invalidHeaderToken) { try end.wait() }
        _ = try? channel.finish()
    }

    @Test func everyASCIIByteIsJudgedAsRFC9110Says() {
        let tchar = Set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        for byte in UInt8(0)...UInt8(127) {
            let text = String(decoding: [byte], as: UTF8.self)
            #expect(Self.isValidName(text) == tchar.contains(byte), "name byte \(byte)")
            let valueAllowed = byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
            #expect(Self.isValidValue("a" + text) == valueAllowed, "value byte \(byte)")
        }
    }

    /// Names are checked eight bytes at a time when they are lower-case letters, digits and '-': every byte
    /// value at every position of names of 8 to 20 bytes (one word; two overlapping; several and an overlap)
    /// must be judged as a lone byte is.
    @Test func everyByteIsJudgedAloneAtEveryPositionOfALongName() {
        var disagreements = 0
        for byte in UInt8(0)...UInt8(255) {
            let allowed = byte < 128 && HTTP1HeaderValidation.isTokenByte(byte)
            for count in [8, 9, 15, 16, 20] {
                for position in 0..<count {
                    var name = Array("x-envoy-upstream-svc".utf8.prefix(count))
                    name[position] = byte
                    let judged = name.withUnsafeBufferPointer(HTTP1HeaderValidation.isValidName)
                    if judged != allowed { disagreements += 1 }
                }
            }
        }
        #expect(disagreements == 0)
        #expect(Self.isValidName("x-envoy-upstream-service-time") && Self.isValidName("content-length"))
        #expect(Self.isValidName("Content-Length") && Self.isValidName("x-custom_header.v2"), "other tokens, byte by byte")
        #expect(HTTP1HeaderValidation.isLowercaseNameWord(0x2D7A_6139_302D_6162))
        #expect(!HTTP1HeaderValidation.isLowercaseNameWord(0x2D7A_6139_302D_6141), "an upper-case letter")
    }

    /// Values are checked eight bytes at a time: every byte value at every position of a 20-byte value (two
    /// words and a tail) must be judged as a lone byte is.
    @Test func everyByteIsJudgedAloneAtEveryPositionOfALongValue() {
        var disagreements = 0
        for byte in UInt8(0)...UInt8(255) {
            let allowed = byte == 0x09 || (byte >= 0x20 && byte != 0x7F)
            for position in 0..<20 {
                var value = [UInt8](repeating: UInt8(ascii: "a"), count: 20)
                value[position] = byte
                let judged = value.withUnsafeBufferPointer(HTTP1HeaderValidation.isValidValue)
                if judged != allowed { disagreements += 1 }
            }
        }
        #expect(disagreements == 0)
        #expect(HTTP1HeaderValidation.isPrintableASCII(0x7E20_4142_4344_4546))
        #expect(!HTTP1HeaderValidation.isPrintableASCII(0x7F20_4142_4344_4546))
        #expect(!HTTP1HeaderValidation.isPrintableASCII(0x4120_4142_4344_451F))
    }

    @Test func bytesEncodedBeforeRemovalAreHandedOn() throws {
        let encoder = HTTP1ResponseEncoder()
        let channel = EmbeddedChannel(handler: encoder)
        let head = HTTPResponseHead(version: .http1_1, status: .switchingProtocols,
                                    headers: ["upgrade": "websocket", "connection": "upgrade"])
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        try channel.pipeline.syncOperations.removeHandler(encoder).wait()
        channel.flush()
        let written = try #require(try channel.readOutbound(as: IOData.self))
        guard case .byteBuffer(let bytes) = written else { Issue.record("not bytes"); return }
        #expect(String(buffer: bytes) == "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
    }

    @Test func messagesAfterAFlushStartClean() throws {
        let channel = EmbeddedChannel(handler: HTTP1ResponseEncoder())
        var seen: [String] = []
        for body in ["one", "two"] {
            for part in Self.response(.ok, [("content-length", "3")], body: body) { channel.write(part, promise: nil) }
            channel.flush()
            while let data = try channel.readOutbound(as: IOData.self) {
                if case .byteBuffer(let bytes) = data { seen.append(String(buffer: bytes)) }
            }
        }
        #expect(seen == ["HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\none", "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\ntwo"])
        _ = try? channel.finish()
    }

    @Test func chunkSizesAreHexadecimal() throws {
        var buffer = ByteBuffer()
        for value in [1, 15, 16, 255, 4096, 0x1abcd] {
            buffer.clear()
            buffer.writeHexadecimal(value)
            #expect(String(buffer: buffer) == String(value, radix: 16))
        }
    }

    /// Counts the flushes that reach the socket side of the pipeline.
    final class FlushCounter: ChannelOutboundHandler, @unchecked Sendable {
        typealias OutboundIn = IOData
        var flushes = 0

        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    /// A request without a body ends with no bytes: its end's flush, right after the head's, is not passed on.
    @Test func aFlushWithNothingWrittenSinceTheLastIsNotPassedOn() throws {
        let counter = FlushCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandlers([counter, HTTP1RequestEncoder()])
        let parts = Self.request(.GET, [("host", "h")])
        channel.write(parts[0], promise: nil)
        channel.flush()
        #expect(counter.flushes == 1)
        channel.write(parts[1], promise: nil)
        channel.flush()
        #expect(counter.flushes == 1, "the end of a GET adds no bytes")
        let post = Self.request(.POST, [("host", "h")], body: "x")
        channel.write(post[0], promise: nil)
        channel.flush()
        channel.write(post[1], promise: nil)
        channel.flush()
        #expect(counter.flushes == 3, "a chunk is written and flushed")
        var sent = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let bytes) = data { sent += String(buffer: bytes) }
        }
        #expect(sent == "GET /p?q=1 HTTP/1.1\r\nhost: h\r\n\r\n"
                + "POST /p?q=1 HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n")
        _ = try? channel.finish()
    }
}
