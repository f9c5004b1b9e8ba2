import MeshTestSupport
import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import ProxyCore
import Testing
@testable import ProxyHTTP

@Suite struct HTTP2InboundWindowTests {
    @Test func opensBackToTheTargetOnceHalfIsUsed() {
        var window = HTTP2InboundWindow(target: 100)
        #expect(window.reported(size: 100) == nil)
        #expect(window.reported(size: 51) == nil)
        #expect(window.reported(size: 50) == 50)
    }

    @Test func heldBytesAreNotGivenBackUntilHandedOn() {
        var window = HTTP2InboundWindow(target: 100)
        window.hold(60)
        #expect(window.reported(size: 40) == nil, "60 bytes held: the client may not send more yet")
        #expect(window.handedOn(60) == 60)
    }

    @Test func aClosedWindowStaysAsItIs() {
        var window = HTTP2InboundWindow(target: 100)
        window.closed = true
        #expect(window.reported(size: 0) == nil)
    }

    @Test func aNegativeWindowIsRaisedToTheTarget() {
        var window = HTTP2InboundWindow(target: 100)
        #expect(window.reported(size: -20) == 120)
    }
}

/// A downstream HTTP/2 connection's streams served without channels: the demultiplexer alone on an
/// EmbeddedChannel, taking the frames NIO's HTTP/2 handler would pass up, with upstreams from a
/// fake connector.
@Suite struct HTTP2StreamDemultiplexerTests {
    let loop = EmbeddedEventLoop()
    let store = StatsStore()
    let connector: EmbeddedUpstreamConnector
    let downstream: EmbeddedChannel
    let demultiplexer: HTTP2StreamDemultiplexer
    let managers = MadeManagers()

    init(streamError: Bool = false) throws {
        connector = EmbeddedUpstreamConnector(loop: loop)
        let config = try TestProxyConfig.make(loop: loop, connector: connector, store: store)
        let holder = SnapshotHolder(config)
        let malformed = HTTP2MalformedRequestPolicy(streamError: streamError, extendedConnect: false,
                                                    messagingErrors: config.stats.http2RxMessagingError)
        let shared = SharedTimeoutCheck(loop: loop)
        let indexing = HTTP2ResponseHeaderIndexing()
        demultiplexer = HTTP2StreamDemultiplexer(eventLoop: loop, connectionWindowTarget: 1000, streamWindowTarget: 100,
                                                 malformed: malformed) { [managers] in
            let manager = HTTPConnectionManager(config: holder, tracker: nil, transport: .http2Stream, connectionID: 1,
                                                tls: nil, sharedTimeoutCheck: shared, responseIndexing: indexing)
            managers.made.append(Weak(manager))
            return manager
        }
        downstream = EmbeddedChannel(handler: demultiplexer, loop: loop)
        try downstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func request(_ id: Int, path: String = "/get", endStream: Bool = true) throws {
        let block = HPACKHeaders([(":method", endStream ? "GET" : "POST"), (":scheme", "http"),
                                  (":authority", "example.com:10000"), (":path", path)])
        try downstream.writeInbound(HTTP2Frame(streamID: HTTP2StreamID(id),
                                               payload: .headers(.init(headers: block, endStream: endStream))))
    }

    func respond(_ index: Int, body: String) throws {
        let channel = connector.channels[index]
        while try channel.readOutbound(as: HTTPClientRequestPart.self) != nil {}
        let head = HTTPResponseHead(version: .http1_1, status: .ok,
                                    headers: HTTPHeaders([("content-length", String(body.utf8.count))]))
        try channel.writeInbound(HTTPClientResponsePart.head(head))
        try channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: body)))
        try channel.writeInbound(HTTPClientResponsePart.end(nil))
    }

    func written() throws -> [HTTP2Frame] {
        var frames: [HTTP2Frame] = []
        while let frame = try downstream.readOutbound(as: HTTP2Frame.self) { frames.append(frame) }
        return frames
    }

    func counter(_ name: String) -> UInt64? {
        store.snapshot().counters.first { $0.name == name }?.value
    }

    @Test func eachStreamGetsItsResponseOnItsOwnID() throws {
        try request(1, path: "/one")
        try request(3, path: "/two")
        #expect(connector.channels.count == 2)
        try respond(1, body: "second")
        try respond(0, body: "first")
        let frames = try written()
        // Stream 3 was answered first; each response is HEADERS (200), then DATA, the last ending the stream.
        #expect(frames.first?.streamID == 3 && frames.last?.streamID == 1)
        for (id, body) in [(3, "second"), (1, "first")] {
            let own = frames.filter { $0.streamID == HTTP2StreamID(id) }.map(\.payload)
            guard case .headers(let head)? = own.first, case .data(let last)? = own.last else {
                Issue.record("\(own)"); continue
            }
            #expect(head.headers.first(name: ":status") == "200" && !head.endStream)
            #expect(last.endStream)
            let bytes = own.dropFirst().compactMap { payload -> String? in
                guard case .data(let data) = payload, case .byteBuffer(let buffer) = data.data else { return nil }
                return String(buffer: buffer)
            }
            #expect(bytes.joined() == body)
        }
        #expect(counter("http.ingress_http.downstream_rq_http2_total") == 2)
    }

    @Test func aFinishedStreamLetsGoOfItsManager() throws {
        try request(1)
        try respond(0, body: "ok")
        #expect(try written().last.map { frame in
            if case .data(let data) = frame.payload { data.endStream } else { false }
        } == true)
        downstream.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: 1, reason: nil))
        loop.run()
        #expect(managers.made.count == 1)
        #expect(managers.made.allSatisfy { $0.object == nil }, "the manager of a finished stream is freed")
        #expect((counter("http.ingress_http.downstream_rq_rx_reset") ?? 0) == 0)
    }

    @Test func aClientResetResetsTheRequestUnderWay() throws {
        try request(1)
        #expect(connector.channels.count == 1)
        downstream.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: 1, reason: .cancel))
        loop.run()
        #expect(counter("http.ingress_http.downstream_rq_rx_reset") == 1)
        #expect(try written().isEmpty)
    }

    @Test func receiveWindowsAreKeptOpen() throws {
        try request(1, endStream: false)
        downstream.pipeline.fireUserInboundEventTriggered(
            NIOHTTP2WindowUpdatedEvent(streamID: .rootStream, inboundWindowSize: 400, outboundWindowSize: 65535))
        downstream.pipeline.fireUserInboundEventTriggered(
            NIOHTTP2WindowUpdatedEvent(streamID: 1, inboundWindowSize: 60, outboundWindowSize: 65535))
        downstream.pipeline.fireUserInboundEventTriggered(
            NIOHTTP2WindowUpdatedEvent(streamID: 1, inboundWindowSize: 40, outboundWindowSize: 65535))
        let updates = try written().compactMap { frame -> (HTTP2StreamID, Int)? in
            guard case .windowUpdate(let increment) = frame.payload else { return nil }
            return (frame.streamID, increment)
        }
        #expect(updates.map(\.0) == [.rootStream, HTTP2StreamID(1)])
        #expect(updates.map(\.1) == [600, 60])
    }

    @Test func aMalformedRequestResetsOnlyItsStreamWhenStreamErrorsAreAsked() throws {
        let test = try HTTP2StreamDemultiplexerTests(streamError: true)
        let block = HPACKHeaders([(":method", "GET"), (":scheme", "http"), (":path", "/")])
        try test.downstream.writeInbound(HTTP2Frame(streamID: 1, payload: .headers(.init(headers: block, endStream: true))))
        test.loop.run()
        let frames = try test.written()
        guard frames.count == 1, case .rstStream(.protocolError) = frames[0].payload else { Issue.record("\(frames)"); return }
        #expect(test.downstream.isActive)
        #expect(test.counter("http2.rx_messaging_error") == 1)
    }

    @Test func aMalformedRequestClosesTheConnectionByDefault() throws {
        let block = HPACKHeaders([(":method", "GET"), (":scheme", "http"), (":path", "/")])
        try downstream.writeInbound(HTTP2Frame(streamID: 1, payload: .headers(.init(headers: block, endStream: true))))
        loop.run()
        #expect(!downstream.isActive)
        #expect(connector.channels.isEmpty)
    }
}

final class MadeManagers: @unchecked Sendable {
    var made: [Weak<HTTPConnectionManager>] = []
}

struct Weak<Object: AnyObject> {
    weak var object: Object?
    init(_ object: Object) { self.object = object }
}

@Suite struct SharedTimeoutCheckTests {
    @Test func membersKeepTheirPlacesAsOthersLeave() throws {
        let loop = EmbeddedEventLoop()
        let config = try TestProxyConfig.make(loop: loop, connector: EmbeddedUpstreamConnector(loop: loop))
        let check = SharedTimeoutCheck(loop: loop)
        let managers = (0..<3).map { _ in HTTPConnectionManager(config: SnapshotHolder(config)) }
        for manager in managers { check.register(manager, by: loop.now + .seconds(60)) }
        check.register(managers[1], by: loop.now + .seconds(30))
        #expect(managers.map(\.sharedTimeoutCheckSlot) == [0, 1, 2], "a second registration keeps the place")
        check.remove(managers[0])
        #expect(managers.map(\.sharedTimeoutCheckSlot) == [nil, 1, 0], "the last member took the leaver's place")
        check.remove(managers[0])
        check.remove(managers[2])
        #expect(managers.map(\.sharedTimeoutCheckSlot) == [nil, 0, nil])
        check.remove(managers[1])
        check.register(managers[2], by: loop.now + .seconds(60))
        #expect(managers.map(\.sharedTimeoutCheckSlot) == [nil, nil, 0])
    }
}
