import NIOCore
import NIOEmbedded
import ProxyCore
import Testing
@testable import ProxyHTTP

/// The HTTP/2 connection handler's books: connection stats, and that a closed connection frees it.
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
}
