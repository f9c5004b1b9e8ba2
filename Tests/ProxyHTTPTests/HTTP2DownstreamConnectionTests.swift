import NIOCore
import NIOEmbedded
import NIOHTTP2
import ProxyCore
import Testing
@testable import ProxyHTTP

/// The HTTP/2 connection handler's books (connection stats, and that a closed connection frees it) and its drain.
@Suite struct HTTP2DownstreamConnectionTests {
    let store = StatsStore()

    func gauge(_ name: String) -> Int64? {
        store.snapshot().gauges.first { $0.name == name }?.value
    }

    func counter(_ name: String) -> UInt64? {
        store.snapshot().counters.first { $0.name == name }?.value
    }

    @Test func countsTheConnectionAndLetsGoOfItsHandlerWhenClosed() throws {
        let stats = ConnectionManagerStats(statPrefix: "ingress_http", listenerScope: nil, store: store)
        weak var released: HTTP2DownstreamConnection?
        do {
            // The default idle timeout (an hour) has the handler schedule a check, which must not keep it either.
            let handler = HTTP2DownstreamConnection(stats: stats, tracker: ConnectionTracker())
            released = handler
            let channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            #expect(gauge("http.ingress_http.downstream_cx_http2_active") == 1)
            _ = try channel.finish(acceptAlreadyClosed: true)
        }
        #expect(gauge("http.ingress_http.downstream_cx_http2_active") == 0)
        #expect(counter("http.ingress_http.downstream_cx_destroy") == 1)
        #expect(released == nil, "the HTTP/2 connection handler of a closed connection is freed")
    }

    /// Stream events as NIO fires them, in front of the handler alone or of the demultiplexer, which
    /// tells the handler of streams by a call and keeps the events from the rest of the pipeline.
    @Test(arguments: [false, true])
    func aDrainRefusesNothingUntilItsPingIsAnsweredThenNamesTheLastStreamAndClosesAfterIt(throughDemultiplexer: Bool) throws {
        let stats = ConnectionManagerStats(statPrefix: "ingress_http", listenerScope: nil, store: store)
        let handler = HTTP2DownstreamConnection(stats: stats, tracker: nil)
        let events = EventRecorder()
        let channel = EmbeddedChannel()
        if throughDemultiplexer {
            let malformed = HTTP2MalformedRequestPolicy(streamError: false, extendedConnect: false,
                                                        messagingErrors: stats.http2RxMessagingError)
            try channel.pipeline.syncOperations.addHandler(HTTP2StreamDemultiplexer(
                eventLoop: channel.eventLoop, connectionWindowTarget: 1000, streamWindowTarget: 100, malformed: malformed,
                connectionHandler: handler, makeManager: { fatalError("no stream has a request here") }))
        }
        try channel.pipeline.syncOperations.addHandlers([handler, events])
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        for id in [1, 3, 5] {
            channel.pipeline.fireUserInboundEventTriggered(
                NIOHTTP2StreamCreatedEvent(streamID: HTTP2StreamID(id), localInitialWindowSize: nil, remoteInitialWindowSize: nil))
        }
        for id in [1, 5] {
            channel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: HTTP2StreamID(id), reason: nil))
        }
        #expect(events.count == (throughDemultiplexer ? 0 : 5))
        handler.startDraining(closeAfter: .seconds(60))
        guard case .goAway(let first, .noError, _)? = try channel.readOutbound(as: HTTP2Frame.self)?.payload,
              case .ping(let ping, ack: false)? = try channel.readOutbound(as: HTTP2Frame.self)?.payload else {
            Issue.record("no GOAWAY and PING"); return
        }
        #expect(first == .maxID)
        try channel.writeInbound(HTTP2Frame(streamID: .rootStream, payload: .ping(ping, ack: true)))
        guard case .goAway(let last, .noError, _)? = try channel.readOutbound(as: HTTP2Frame.self)?.payload else {
            Issue.record("no last GOAWAY"); return
        }
        #expect(last == HTTP2StreamID(5))
        #expect(channel.isActive, "stream 3 is still open")
        channel.pipeline.fireUserInboundEventTriggered(StreamClosedEvent(streamID: HTTP2StreamID(3), reason: nil))
        #expect(!channel.isActive, "closed with its last stream")
        _ = try channel.finish(acceptAlreadyClosed: true)
    }
}

/// Counts the user events that reach the end of the pipeline.
private final class EventRecorder: ChannelInboundHandler {
    typealias InboundIn = Any
    private(set) var count = 0

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        count += 1
    }
}
