import MeshTestSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyCore
import ProxyRouting
import Testing
import XDSAPI
@testable import ProxyHTTP

/// The connection manager's and router's timeouts on the embedded loop's clock, with Envoy 1.40's
/// answers (checked side by side in Tests/integration/test_timeouts.py).
extension HTTPConnectionManagerTests {
    static func timeouts(_ edit: (inout ConnectionTimeouts) -> Void) -> ConnectionTimeouts {
        var timeouts = ConnectionTimeouts()
        edit(&timeouts)
        return timeouts
    }

    func sendHead(_ uri: String = "/post", method: HTTPMethod = .POST, contentLength: Int) throws {
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri,
                                   headers: HTTPHeaders([("Host", "a"), ("Content-Length", String(contentLength))]))
        try downstream.writeInbound(HTTPServerRequestPart.head(head))
    }

    /// The shared check sleeps no longer than the shortest timeout that is set, whichever it is.
    @Test func theCheckIntervalIsTheShortestTimeoutSet() {
        #expect(Self.timeouts { _ in }.checkInterval == .minutes(5))
        #expect(Self.timeouts { $0.streamIdle = nil; $0.connectionIdle = nil }.checkInterval == nil)
        #expect(Self.timeouts { $0.streamIdle = nil }.checkInterval == .hours(1))
        #expect(Self.timeouts { $0.request = .seconds(7); $0.requestHeaders = .seconds(9) }.checkInterval == .seconds(7))
        #expect(Self.timeouts { $0.requestHeaders = .seconds(3); $0.request = .seconds(4) }.checkInterval == .seconds(3))
        #expect(Self.timeouts { $0.streamIdle = nil; $0.maxConnectionDuration = .seconds(2) }.checkInterval == .seconds(2))
        #expect(Self.timeouts { $0.request = .seconds(1) }.connectionCheckInterval == .hours(1), "connection-wide only")
        #expect(Self.timeouts { $0.maxConnectionDuration = .seconds(2) }.connectionCheckInterval == .seconds(2))
        #expect(Self.timeouts { $0.connectionIdle = nil }.connectionCheckInterval == nil)
    }

    @Test func aSilentUpstreamEndsTheStreamAfterTheIdleTimeout() throws {
        let test = try HTTPConnectionManagerTests(timeouts: Self.timeouts { $0.streamIdle = .seconds(1) })
        try test.send()
        _ = try test.upstreamRequest()
        test.loop.advanceTime(by: .milliseconds(999))
        #expect(try test.downstream.readOutbound(as: HTTPServerResponsePart.self) == nil)
        test.loop.advanceTime(by: .milliseconds(1))
        let (head, body) = try test.downstreamResponse()
        #expect(head.status == .gatewayTimeout)
        #expect(body == "stream timeout")
        #expect(head.headers.first(name: "connection") == nil, "a complete request keeps its connection")
        #expect(test.counter("http.ingress_http.downstream_rq_idle_timeout") == 1)
        #expect(test.counter("cluster.web.upstream_rq_504") == nil, "the connection manager answered, not the router")
        #expect(!test.connector.channels[0].isActive, "the upstream request is abandoned")
    }

    @Test func requestBodyActivityPushesTheIdleTimeoutBack() throws {
        let test = try HTTPConnectionManagerTests(timeouts: Self.timeouts { $0.streamIdle = .seconds(1) })
        try test.sendHead(contentLength: 6)
        for _ in 0..<2 {
            test.loop.advanceTime(by: .milliseconds(700))
            try test.downstream.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "ab")))
        }
        test.loop.advanceTime(by: .milliseconds(700))
        #expect(try test.downstream.readOutbound(as: HTTPServerResponsePart.self) == nil)
        test.loop.advanceTime(by: .milliseconds(300))
        let (head, body) = try test.downstreamResponse()
        #expect(head.status == .requestTimeout, "the request is not complete: 408")
        #expect(body == "stream timeout")
        #expect(head.headers.first(name: "connection") == "close")
    }

    @Test func aRoutesIdleTimeoutReplacesTheConnectionManagers() throws {
        let test = try HTTPConnectionManagerTests(route: RouteAction(cluster: "web", idleTimeoutMs: 200))
        try test.send()
        _ = try test.upstreamRequest()
        test.loop.advanceTime(by: .milliseconds(200))
        #expect(try test.downstreamResponse().0.status == .gatewayTimeout)
    }

    @Test func aStartedResponseIsResetWhenItStalls() throws {
        let test = try HTTPConnectionManagerTests(timeouts: Self.timeouts { $0.streamIdle = .seconds(1) })
        try test.send()
        _ = try test.upstreamRequest()
        let head = HTTPResponseHead(version: .http1_1, status: .ok, headers: HTTPHeaders([("Content-Length", "10")]))
        try test.connector.channels[0].writeInbound(HTTPClientResponsePart.head(head))
        test.loop.advanceTime(by: .seconds(1))
        #expect(!test.downstream.isActive)
        #expect(test.counter("http.ingress_http.downstream_rq_tx_reset") == 1)
    }

    @Test func requestTimeoutBoundsTheWholeRequest() throws {
        let test = try HTTPConnectionManagerTests(timeouts: Self.timeouts { $0.request = .seconds(1) })
        try test.sendHead(contentLength: 10)
        test.loop.advanceTime(by: .milliseconds(500))
        try test.downstream.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: "ab")))
        test.loop.advanceTime(by: .milliseconds(500))
        let (head, body) = try test.downstreamResponse()
        #expect(head.status == .requestTimeout)
        #expect(body == "request timeout")
        #expect(head.headers.first(name: "connection") == "close")
        #expect(test.counter("http.ingress_http.downstream_rq_timeout") == 1)
    }

    @Test func anIdleConnectionIsDrainedThenClosed() throws {
        let test = try HTTPConnectionManagerTests(timeouts: Self.timeouts {
            $0.connectionIdle = .seconds(2)
            $0.drain = .seconds(1)
        })
        try test.send()
        _ = try test.upstreamRequest()
        try test.respond(status: .ok)
        _ = try test.downstreamResponse()
        test.loop.advanceTime(by: .milliseconds(1999))
        #expect(test.counter("http.ingress_http.downstream_cx_idle_timeout") == 0)
        test.loop.advanceTime(by: .milliseconds(1))
        #expect(test.counter("http.ingress_http.downstream_cx_idle_timeout") == 1)
        #expect(test.downstream.isActive, "drained first, as Envoy does")
        test.loop.advanceTime(by: .seconds(1))
        #expect(!test.downstream.isActive)
    }

    @Test func aConnectionPastItsMaximumDurationSaysCloseOnItsNextResponse() throws {
        let test = try HTTPConnectionManagerTests(timeouts: Self.timeouts { $0.maxConnectionDuration = .seconds(2) })
        try test.send()
        _ = try test.upstreamRequest()
        try test.respond(status: .ok)
        #expect(try test.downstreamResponse().0.headers.first(name: "connection") == nil)
        test.loop.advanceTime(by: .seconds(2))
        #expect(test.counter("http.ingress_http.downstream_cx_max_duration_reached") == 1)
        try test.send()
        _ = try test.upstreamRequest()
        try test.respond(status: .ok)
        #expect(try test.downstreamResponse().0.headers.first(name: "connection") == "close")
        #expect(!test.downstream.isActive)
    }

    @Test func aHeadBegunButNotFinishedGets408AfterTheHeadersTimeout() throws {
        let holder = SnapshotHolder(try TestProxyConfig.make(
            loop: loop, connector: connector, store: store, timeouts: Self.timeouts { $0.requestHeaders = .seconds(1) }))
        let channel = EmbeddedChannel(loop: loop)
        try DownstreamPipeline.configureHTTP1(channel.pipeline.syncOperations, config: holder, tracker: nil)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 3)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nhost: a\r\n"))
        loop.advanceTime(by: .seconds(1))
        var written = ""
        while let bytes = try channel.readOutbound(as: ByteBuffer.self) { written += String(buffer: bytes) }
        #expect(written.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"))
        // (NIO's protocol error handler answers the half head once the close reaches the decoder; on a
        // socket that write fails, since the channel is closed by then.)
        #expect(written.contains("connection: close\r\n\r\nrequest header timeout"))
        #expect(!channel.isActive)
        #expect(counter("http.ingress_http.downstream_rq_header_timeout") == 1)
    }

    @Test func tooManyRequestHeadersGet431() throws {
        try send(headers: [("Host", "a")] + (0..<100).map { ("x-h\($0)", "v") })
        let (head, body) = try downstreamResponse()
        #expect(head.status == .requestHeaderFieldsTooLarge)
        #expect(body == "Request Header Fields Too Large")
        #expect(connector.channels.isEmpty)
    }

    @Test func anAttemptWithoutUpstreamActivityIsRetriedThenAnswered504() throws {
        let policy = RetryPolicy(retryOn: [.fiveXX], numRetries: 1, perTryIdleTimeoutMs: 1000)
        let test = try HTTPConnectionManagerTests(route: RouteAction(cluster: "web", timeoutMs: 0, retryPolicy: policy))
        try test.send()
        _ = try test.upstreamRequest(0)
        test.loop.advanceTime(by: .seconds(1))
        test.loop.advanceTime(by: .milliseconds(100))  // the retry's back-off
        _ = try test.upstreamRequest(1)
        test.loop.advanceTime(by: .seconds(1))
        let (head, body) = try test.downstreamResponse()
        #expect(head.status == .gatewayTimeout)
        #expect(body == "upstream request timeout")
        #expect(test.counter("cluster.web.upstream_rq_per_try_idle_timeout") == 2)
        #expect(test.counter("cluster.web.upstream_rq_retry") == 1)
    }

    @Test func idlePooledUpstreamConnectionsCloseAfterTheClustersIdleTimeout() throws {
        let test = try HTTPConnectionManagerTests(cluster: { cluster in
            cluster.commonHTTPProtocolOptions.idleTimeout = .init(seconds: 3)
        })
        try test.send()
        _ = try test.upstreamRequest()
        try test.respond(status: .ok)
        _ = try test.downstreamResponse()
        test.loop.advanceTime(by: .seconds(2))
        #expect(test.connector.channels[0].isActive)
        test.loop.advanceTime(by: .seconds(1))
        #expect(!test.connector.channels[0].isActive)
        #expect(test.counter("cluster.web.upstream_cx_idle_timeout") == 1)
    }
}
