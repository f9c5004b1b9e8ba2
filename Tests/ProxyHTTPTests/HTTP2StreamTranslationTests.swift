import MeshTestSupport
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import ProxyCore
import Testing
@testable import ProxyHTTP

/// Writes response parts through an `HTTP2ResponseFramer`, as the connection manager of a stream does.
private final class FramerHarness: ChannelOutboundHandler {
    typealias OutboundIn = HTTPServerResponsePart
    private var framer: HTTP2ResponseFramer

    init(indexing: HTTP2ResponseHeaderIndexing = HTTP2ResponseHeaderIndexing()) {
        framer = HTTP2ResponseFramer(indexing: indexing)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        framer.write(unwrapOutboundIn(data), to: context, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        framer.release(to: context)
        context.flush()
    }
}

@Suite struct HTTP2ResponseFramerTests {
    private func frames(_ parts: [HTTPServerResponsePart], flushAfterHead: Bool = false,
                        indexing: HTTP2ResponseHeaderIndexing = HTTP2ResponseHeaderIndexing()) throws -> [HTTP2Frame.FramePayload] {
        let channel = EmbeddedChannel(handler: FramerHarness(indexing: indexing))
        for part in parts {
            channel.write(part, promise: nil)
            if flushAfterHead, case .head = part { channel.flush() }
        }
        channel.flush()
        var out: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { out.append(frame) }
        return out
    }

    private func head(_ headers: [(String, String)]) -> HTTPServerResponsePart {
        .head(HTTPResponseHead(version: .http1_1, status: .ok, headers: HTTPHeaders(headers)))
    }

    @Test func aHeadersOnlyResponseIsOneHeadersFrameThatEndsTheStream() throws {
        let out = try frames([head([("Server", "envoy"), ("date", "Mon, 07 Dec 2026 10:00:00 GMT"),
                                    ("connection", "close, x-hop"), ("x-hop", "1"), ("keep-alive", "timeout=5"),
                                    ("transfer-encoding", "chunked"), ("x-request-id", "abc"), ("grpc-status", "0")]),
                              .end(nil)])
        guard out.count == 1, case .headers(let frame) = out[0] else { Issue.record("\(out)"); return }
        #expect(frame.endStream)
        #expect(frame.headers.map(\.name) == [":status", "server", "date", "x-request-id", "grpc-status"])
        #expect(frame.headers.map(\.value) == ["200", "envoy", "Mon, 07 Dec 2026 10:00:00 GMT", "abc", "0"])
        // The connection's first x-request-id is indexed, for its name.
        #expect(frame.headers.map(\.indexable) == [.indexable, .indexable, .nonIndexable, .indexable, .indexable])
    }

    /// A volatile field not in the static table is indexed once per connection (and again every
    /// `reindexInterval` responses); its other values go out unindexed, naming the indexed entry.
    @Test func aVolatileNameIsIndexedOncePerConnectionAndThenReferred() throws {
        let indexing = HTTP2ResponseHeaderIndexing()
        var encoder = HPACKEncoder(allocator: ByteBufferAllocator())
        var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
        var blockSizes: [Int] = []
        for time in 0..<3 {
            let fields = [("server", "envoy"), ("date", "Mon, 07 Dec 2026 10:00:0\(time) GMT"),
                          ("x-envoy-upstream-service-time", "\(time)")]
            let out = try frames([head(fields), .end(nil)], indexing: indexing)
            guard out.count == 1, case .headers(let frame) = out[0] else { Issue.record("\(out)"); return }
            #expect(frame.headers.map(\.indexable) == [.indexable, .indexable, .nonIndexable, time == 0 ? .indexable : .nonIndexable])
            var encoded = ByteBuffer()
            try encoder.encode(headers: frame.headers, to: &encoded)
            blockSizes.append(encoded.readableBytes)
            let decoded = try decoder.decodeHeaders(from: &encoded)
            #expect(decoded.map(\.name) == [":status"] + fields.map(\.0))
            #expect(decoded.map(\.value) == ["200"] + fields.map(\.1))
        }
        // Later blocks name it by index: the Huffman-coded name (22 bytes) is not sent again.
        #expect(blockSizes[1] + 20 < blockSizes[0] && blockSizes[2] == blockSizes[1], "\(blockSizes)")
        // A stream of another connection indexes it again.
        let other = try frames([head([("x-envoy-upstream-service-time", "0")]), .end(nil)])
        guard case .headers(let frame)? = other.first else { Issue.record("\(other)"); return }
        #expect(frame.headers.map(\.indexable) == [.indexable, .indexable])
    }

    @Test func aVolatileNameIsIndexedAgainAfterTheInterval() {
        let indexing = HTTP2ResponseHeaderIndexing()
        let interval = HTTP2ResponseHeaderIndexing.reindexInterval
        let requestIDs = (0...(2 * interval + 1)).map { _ in indexing.indexing(ofLowercased: "x-request-id") }
        #expect(requestIDs.indices.filter { requestIDs[$0] == .indexable } == [0, interval + 1])
        #expect(indexing.indexing(ofLowercased: "x-envoy-upstream-service-time") == .indexable)
        #expect(indexing.indexing(ofLowercased: "date") == .nonIndexable)
        #expect(indexing.indexing(ofLowercased: "server") == .indexable)
    }

    /// What `connection` lists, in any case, goes with it; `keep-alive` and `close` name nothing that is sent.
    @Test func theFieldsConnectionNamesAreLeftOut() throws {
        for (connection, kept) in [("Keep-Alive", ["x-hop", "x-other"]), ("close", ["x-hop", "x-other"]),
                                   ("Upgrade, X-Hop", ["x-other"]), ("keep-alive,x-other", ["x-hop"])] {
            let out = try frames([head([("Connection", connection), ("x-hop", "1"), ("x-other", "2")]), .end(nil)])
            guard out.count == 1, case .headers(let frame) = out[0] else { Issue.record("\(out)"); continue }
            #expect(frame.headers.map(\.name) == [":status"] + kept, "connection: \(connection)")
        }
    }

    @Test func theLastBodyFrameEndsTheStream() throws {
        let out = try frames([head([("content-length", "10")]), .body(.byteBuffer(ByteBuffer(string: "hello"))),
                              .body(.byteBuffer(ByteBuffer(string: "world"))), .end(nil)])
        guard out.count == 3, case .headers(let headers) = out[0], case .data(let first) = out[1],
              case .data(let last) = out[2] else { Issue.record("\(out)"); return }
        #expect(!headers.endStream && headers.headers.first(name: "content-length") == "10")
        #expect(first.data.readableBytes == 5 && !first.endStream)
        #expect(last.data.readableBytes == 5 && last.endStream)
    }

    @Test func aFlushSendsAHeldBodyAndALaterEndIsAnEmptyDataFrame() throws {
        let channel = EmbeddedChannel(handler: FramerHarness())
        let bodyWritten = channel.eventLoop.makePromise(of: Void.self)
        channel.write(head([]), promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "hello"))), promise: bodyWritten)
        channel.flush()
        var out: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { out.append(frame) }
        guard out.count == 2, case .data(let body) = out[1] else { Issue.record("\(out)"); return }
        #expect(body.data.readableBytes == 5 && !body.endStream)
        try bodyWritten.futureResult.wait()
        channel.writeAndFlush(HTTPServerResponsePart.end(nil), promise: nil)
        guard case .data(let end)? = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("no end"); return
        }
        #expect(end.data.readableBytes == 0 && end.endStream)
    }

    @Test func anEndMergedIntoAHeldBodyCompletesBothPromises() throws {
        let channel = EmbeddedChannel(handler: FramerHarness())
        let bodyWritten = channel.eventLoop.makePromise(of: Void.self)
        let endWritten = channel.eventLoop.makePromise(of: Void.self)
        channel.write(head([]), promise: nil)
        channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: "hello"))), promise: bodyWritten)
        channel.write(HTTPServerResponsePart.end(nil), promise: endWritten)
        channel.flush()
        try bodyWritten.futureResult.wait()
        try endWritten.futureResult.wait()
        _ = try channel.readOutbound(as: HTTP2Frame.FramePayload.self)
        guard case .data(let last)? = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("no data"); return
        }
        #expect(last.endStream && last.data.readableBytes == 5)
        #expect(try channel.readOutbound(as: HTTP2Frame.FramePayload.self) == nil)
    }

    @Test func aFlushSendsTheHeadAlone() throws {
        let out = try frames([head([]), .end(nil)], flushAfterHead: true)
        guard out.count == 2, case .headers(let headers) = out[0], case .data(let end) = out[1] else {
            Issue.record("\(out)"); return
        }
        #expect(!headers.endStream)
        #expect(end.endStream)
    }

    @Test func trailersEndTheStreamWithoutAStatus() throws {
        let out = try frames([head([]), .body(.byteBuffer(ByteBuffer(string: "x"))),
                              .end(HTTPHeaders([("Grpc-Status", "0")]))])
        guard out.count == 3, case .headers(let trailers) = out[2] else { Issue.record("\(out)"); return }
        #expect(trailers.endStream)
        #expect(trailers.headers.map(\.name) == ["grpc-status"])
    }
}

@Suite struct HTTP2RequestTranslationTests {
    private func block(_ fields: [(String, String)]) -> HPACKHeaders { HPACKHeaders(fields) }

    @Test func aRequestBecomesHTTP1WithHostFromTheAuthority() throws {
        let head = try HTTP2RequestTranslation.requestHead(
            block([(":method", "GET"), (":scheme", "http"), (":authority", "example.com"), (":path", "/a?b"),
                   ("accept", "*/*")]), endStream: true)
        #expect(head.method == .GET)
        #expect(head.uri == "/a?b")
        #expect(head.version == HTTPVersion(major: 2, minor: 0))
        #expect(head.headers.map(\.name) == ["host", "accept"])
        #expect(head.headers.first(name: "host") == "example.com")
    }

    @Test func aHostFieldIsKeptAndStandsInForAMissingAuthority() throws {
        let head = try HTTP2RequestTranslation.requestHead(
            block([(":method", "GET"), (":scheme", "http"), (":path", "/"), ("host", "h.example")]), endStream: true)
        #expect(head.headers.map(\.name) == ["host"])
        #expect(throws: HTTP2RequestTranslation.TranslationError.missingPseudoHeader(":authority")) {
            try HTTP2RequestTranslation.requestHead(block([(":method", "GET"), (":scheme", "http"), (":path", "/")]),
                                                     endStream: true)
        }
    }

    @Test func aBodyWithoutContentLengthIsChunkedAndNoBodyIsLengthZero() throws {
        let fields = [(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/")]
        let open = try HTTP2RequestTranslation.requestHead(block(fields), endStream: false)
        #expect(open.headers.first(name: "transfer-encoding") == "chunked")
        let ended = try HTTP2RequestTranslation.requestHead(block(fields), endStream: true)
        #expect(ended.headers.first(name: "content-length") == "0")
        let sized = try HTTP2RequestTranslation.requestHead(block(fields + [("content-length", "3")]), endStream: false)
        #expect(sized.headers.map(\.name) == ["host", "content-length"])
        let get = try HTTP2RequestTranslation.requestHead(
            block([(":method", "DELETE"), (":scheme", "http"), (":authority", "a"), (":path", "/")]), endStream: false)
        #expect(get.headers.map(\.name) == ["host"])
    }

    @Test func contentLengthValuesAreDigitsOrAListOfOneNumber() throws {
        #expect(try HTTP2RequestTranslation.contentLength("5") == 5)
        #expect(try HTTP2RequestTranslation.contentLength(" 12 ") == 12)
        #expect(try HTTP2RequestTranslation.contentLength("7, 7") == 7)
        for bad in ["", "-1", "1 2", "5, 6", "0x10", "5,", "99999999999999999999"] {
            #expect(throws: HTTP2RequestTranslation.TranslationError.invalidContentLength) {
                try HTTP2RequestTranslation.contentLength(bad)
            }
        }
        var length: Int?
        #expect(throws: HTTP2RequestTranslation.TranslationError.invalidContentLength) {
            try HTTP2RequestTranslation.requestHead(
                block([(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/"),
                       ("content-length", "3"), ("content-length", "4")]), endStream: false, contentLength: &length)
        }
    }

    @Test func aBodyMustBeAsLongAsItsContentLengthSays() throws {
        let store = StatsStore()
        let config = try TestProxyConfig.make(loop: EmbeddedEventLoop(),
                                              connector: EmbeddedUpstreamConnector(loop: EmbeddedEventLoop()), store: store)
        let manager = HTTPConnectionManager(config: SnapshotHolder(config))
        let head = HPACKHeaders([(":method", "POST"), (":scheme", "http"), (":authority", "a"), (":path", "/"),
                                 ("content-length", "4")])
        func body(_ text: String, end: Bool) -> HTTP2Frame.FramePayload {
            .data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: end))
        }
        var short = HTTP2RequestTranslation(validatesRequestHead: true, extendedConnect: false)
        try short.receive(.headers(.init(headers: head)), manager: manager)
        try short.receive(body("ab", end: false), manager: manager)
        #expect(throws: HTTP2RequestTranslation.TranslationError.contentLengthMismatch) {
            try short.receive(body("c", end: true), manager: manager)
        }
        var long = HTTP2RequestTranslation(validatesRequestHead: true, extendedConnect: false)
        try long.receive(.headers(.init(headers: head)), manager: manager)
        #expect(throws: HTTP2RequestTranslation.TranslationError.contentLengthMismatch) {
            try long.receive(body("abcde", end: false), manager: manager)
        }
        var none = HTTP2RequestTranslation(validatesRequestHead: true, extendedConnect: false)
        #expect(throws: HTTP2RequestTranslation.TranslationError.contentLengthMismatch) {
            try none.receive(.headers(.init(headers: head, endStream: true)), manager: manager)
        }
    }

    @Test func trailersLoseNothingButPseudoHeaders() {
        let trailers = HTTP2RequestTranslation.regularHeaders(block([("grpc-status", "0"), ("x-a", "b")]))
        #expect(trailers.map(\.name) == ["grpc-status", "x-a"])
    }
}

private extension HTTP2RequestTranslation {
    /// The head alone, for tests that do not look at `content-length`.
    static func requestHead(_ block: HPACKHeaders, endStream: Bool) throws -> HTTPRequestHead {
        var length: Int?
        return try requestHead(block, endStream: endStream, contentLength: &length)
    }
}
