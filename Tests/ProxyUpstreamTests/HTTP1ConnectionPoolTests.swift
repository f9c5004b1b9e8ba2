import MeshTestSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyCore
import Testing
@testable import ProxyUpstream

/// The pool's idle lists: which connection a request gets back, and which ones leave the pool.
@Suite struct HTTP1ConnectionPoolTests {
    final class NoResponse: UpstreamResponseDelegate {
        func upstreamResponseHead(_ head: HTTPResponseHead) {}
        func upstreamResponseBody(_ body: ByteBuffer) {}
        func upstreamResponseEnd(_ trailers: HTTPHeaders?) {}
        func upstreamReadComplete() {}
        func upstreamConnectionLost() {}
        func upstreamProtocolError() {}
        func upstreamWritabilityChanged(_ writable: Bool) {}
    }

    let loop = EmbeddedEventLoop()
    let connector: EmbeddedUpstreamConnector
    let pool: HTTP1ConnectionPool
    let stats = ClusterStats(clusterName: "c", store: StatsStore())
    let delegate = NoResponse()
    let a = Host(address: "127.0.0.1", port: 8001, hostname: "")
    let b = Host(address: "127.0.0.1", port: 8002, hostname: "")

    init() {
        connector = EmbeddedUpstreamConnector(loop: loop)
        let resources = PriorityResources(priority: .default, thresholds: CircuitBreakerThresholds(),
                                          gauges: stats.circuitBreakers[0])
        pool = HTTP1ConnectionPool(loop: loop, connector: connector, stats: stats, connectTimeout: .seconds(1),
                                   resources: resources)
    }

    /// A new connection to `host` (none is idle).
    func open(_ host: Host) throws -> UpstreamConnection {
        var opened: Result<UpstreamConnection, any Error>?
        pool.acquire(host: host, delegate: delegate) { result, _ in opened = result }
        loop.run()
        return try #require(opened).get()
    }

    @Test func theLastReleasedConnectionOfTheHostIsTakenFirst() throws {
        let first = try open(a), second = try open(a), other = try open(b)
        #expect(connector.channels.count == 3)
        pool.release(first)
        pool.release(other)
        pool.release(second)
        #expect(pool.takeIdle(host: a, delegate: delegate) === second)
        #expect(pool.takeIdle(host: a, delegate: delegate) === first)
        #expect(pool.takeIdle(host: a, delegate: delegate) == nil)
        #expect(pool.takeIdle(host: b, delegate: delegate) === other)
        #expect(pool.takeIdle(host: b, delegate: delegate) == nil)
        // Taken and released again, a host's list is used once more.
        pool.release(first)
        #expect(pool.takeIdle(host: a, delegate: delegate) === first)
        #expect(first.handler.delegate === delegate)
    }

    @Test func closedConnectionsLeaveTheIdleList() throws {
        let first = try open(a), second = try open(a)
        pool.release(first)
        pool.release(second)
        try connector.channels[1].close().wait()
        #expect(second.closed)
        #expect(pool.takeIdle(host: a, delegate: delegate) === first)
        #expect(pool.takeIdle(host: a, delegate: delegate) == nil)
        #expect(stats.upstreamCxDestroy.value == 1)
    }

    @Test func closingAHostsIdleConnectionsLeavesTheOthers() throws {
        let first = try open(a), other = try open(b)
        pool.release(first)
        pool.release(other)
        pool.closeIdle(host: a)
        loop.run()
        #expect(!connector.channels[0].isActive)
        #expect(pool.takeIdle(host: a, delegate: delegate) == nil)
        #expect(pool.takeIdle(host: b, delegate: delegate) === other)
        pool.release(other)
        pool.closeIdle()
        loop.run()
        #expect(!connector.channels[1].isActive)
        #expect(pool.takeIdle(host: b, delegate: delegate) == nil)
    }
}
