import NIOCore
import NIOEmbedded
import ProxyCore
import ProxyUpstream
import Testing
@testable import ProxyTCP

@Suite struct TCPProxyHandlerTests {
    /// A connection to a cluster that does not exist is closed at once and counted as Envoy does;
    /// the handler, which keeps its context, is freed with the connection.
    @Test func aConnectionWithoutItsClusterIsClosedAndFreed() throws {
        let store = StatsStore()
        let config = TCPProxyConfig(statPrefix: "tcp_in", targets: [.init(cluster: "missing", weight: 1)],
                                    clusters: ClusterManager([]), idleTimeout: .hours(1), maxConnectAttempts: 1,
                                    stats: TCPProxyStats(statPrefix: "tcp_in", store: store))
        weak var released: TCPProxyHandler?
        do {
            let handler = TCPProxyHandler(config: SnapshotHolder(config))
            released = handler
            let channel = EmbeddedChannel(handler: handler)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            #expect(!channel.isActive, "closed for want of a cluster")
            _ = try channel.finish(acceptAlreadyClosed: true)
        }
        let counters = store.snapshot().counters
        #expect(counters.first { $0.name == "tcp.tcp_in.downstream_cx_no_route" }?.value == 1)
        #expect(released == nil, "the tcp_proxy handler of a closed connection is freed")
    }
}
