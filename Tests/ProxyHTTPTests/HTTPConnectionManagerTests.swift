import MeshTestSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyCore
import ProxyRouting
import ProxyUpstream
import Testing
import XDSAPI
@testable import ProxyHTTP

/// The router on in-memory channels: a downstream EmbeddedChannel with the connection manager and
/// upstream EmbeddedChannels from a fake connector, all on one EmbeddedEventLoop.
@Suite struct HTTPConnectionManagerTests {
    let loop = EmbeddedEventLoop()
    let store = StatsStore()
    let connector: EmbeddedUpstreamConnector
    let downstream: EmbeddedChannel
    let holder: SnapshotHolder<ConnectionManagerConfig>

    /// - Parameter parsesBytes: the connection's whole HTTP/1.1 pipeline, bytes in and out (the
    ///   request parser in front of the manager), rather than the manager alone taking request parts.
    init(route: RouteAction? = nil, pathPrefix: String = "/", timeouts: ConnectionTimeouts = ConnectionTimeouts(),
         encodesResponses: Bool = false, parsesBytes: Bool = false,
         cluster: (inout Envoy_Config_Cluster_V3_Cluster) -> Void = { _ in }) throws {
        connector = EmbeddedUpstreamConnector(loop: loop)
        let config = try TestProxyConfig.make(loop: loop, connector: connector, route: route, pathPrefix: pathPrefix,
                                              store: store, timeouts: timeouts, cluster: cluster)
        holder = SnapshotHolder(config)
        if parsesBytes {
            downstream = EmbeddedChannel(loop: loop)
            try DownstreamPipeline.configureHTTP1(downstream.pipeline.syncOperations, config: holder, tracker: nil)
        } else {
            downstream = EmbeddedChannel(handler: HTTPConnectionManager(config: holder, encodesResponses: encodesResponses),
                                         loop: loop)
        }
        try downstream.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func send(_ uri: String = "/get", headers: [(String, String)] = [("Host", "example.com:10000")],
              method: HTTPMethod = .GET, body: String? = nil) throws {
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
        try downstream.writeInbound(HTTPServerRequestPart.head(head))
        if let body { try downstream.writeInbound(HTTPServerRequestPart.body(ByteBuffer(string: body))) }
        try downstream.writeInbound(HTTPServerRequestPart.end(nil))
    }

    func upstreamRequest(_ index: Int = 0) throws -> HTTPRequestHead {
        let channel = connector.channels[index]
        // Skips what is left of an earlier request on a reused connection.
        while let part = try channel.readOutbound(as: HTTPClientRequestPart.self) {
            if case .head(let head) = part { return head }
        }
        Issue.record("no request head upstream")
        throw CancellationError()
    }

    func respond(_ index: Int = 0, status: HTTPResponseStatus, headers: [(String, String)] = [], body: String = "") throws {
        let channel = connector.channels[index]
        var all = headers
        all.append(("Content-Length", String(body.utf8.count)))
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: status,
                                                                              headers: HTTPHeaders(all))))
        if !body.isEmpty { try channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: body))) }
        try channel.writeInbound(HTTPClientResponsePart.end(nil))
    }

    func downstreamResponse() throws -> (HTTPResponseHead, String) {
        var head: HTTPResponseHead?
        var body = ""
        while let part = try downstream.readOutbound(as: HTTPServerResponsePart.self) {
            switch part {
            case .head(let h) where h.status != .continue: head = h
            case .head: break
            case .body(.byteBuffer(let buffer)): body += String(buffer: buffer)
            case .body: break
            case .end: return (try #require(head), body)
            }
        }
        Issue.record("response did not end")
        throw CancellationError()
    }

    func counter(_ name: String) -> UInt64? {
        store.snapshot().counters.first { $0.name == name }?.value
    }

    @Test func forwardsWithEnvoysHeaders() throws {
        try send(headers: [("Host", "example.com:10000"), ("User-Agent", "t"), ("Connection", "keep-alive")])
        let head = try upstreamRequest()
        #expect(head.headers.map(\.name) == ["host", "user-agent", "x-forwarded-proto", "x-request-id",
                                            "x-envoy-expected-rq-timeout-ms"])
        #expect(head.headers.first(name: "x-envoy-expected-rq-timeout-ms") == "15000")
        try respond(status: .ok, headers: [("Server", "gunicorn"), ("Content-Type", "text/plain")], body: "hi")
        let (response, body) = try downstreamResponse()
        #expect(response.status == .ok)
        #expect(body == "hi")
        #expect(response.headers.first(name: "server") == "envoy")
        #expect(response.headers.map(\.name).starts(with: ["server", "content-type", "content-length",
                                                            "x-envoy-upstream-service-time", "date"]))
        #expect(counter("cluster.web.upstream_rq_200") == 1)
        #expect(counter("http.ingress_http.downstream_rq_2xx") == 1)
        #expect(counter("listener.127.0.0.1_10000.http.ingress_http.downstream_rq_2xx") == 1)
    }

    @Test func reusesTheUpstreamConnection() throws {
        for _ in 0..<3 {
            try send()
            _ = try upstreamRequest()
            try respond(status: .noContent)
            _ = try downstreamResponse()
        }
        #expect(connector.channels.count == 1)
        #expect(counter("cluster.web.upstream_cx_total") == 1)
    }

    /// A handler that kept its context kept itself alive (the context holds its handler): every closed
    /// connection, and on HTTP/2 every finished stream, stayed in memory with its channel and pipeline.
    @Test func closedConnectionsLetGoOfTheirHandlers() throws {
        weak var manager: HTTPConnectionManager?
        weak var upstreamHandler: UpstreamConnectionHandler?
        do {
            let test = try HTTPConnectionManagerTests()
            manager = try test.downstream.pipeline.syncOperations.handler(type: HTTPConnectionManager.self)
            try test.send()
            _ = try test.upstreamRequest()
            upstreamHandler = try test.connector.channels[0].pipeline.syncOperations.handler(type: UpstreamConnectionHandler.self)
            try test.respond(status: .ok, body: "ok")
            _ = try test.downstreamResponse()
            #expect(manager != nil && upstreamHandler != nil)
            try test.downstream.close().wait()
            try test.connector.channels[0].close().wait()
            test.loop.run()
        }
        #expect(manager == nil, "the connection manager of a closed connection is freed")
        #expect(upstreamHandler == nil, "the handler of a closed upstream connection is freed")
    }

    /// The upstream handler holds its request's stream strongly: the stream must be let go of when the
    /// response ends and the connection goes back to the pool, and when the downstream goes away mid-request.
    @Test func finishedAndAbandonedStreamsAreFreed() throws {
        let test = try HTTPConnectionManagerTests()
        weak var stream: AnyObject?
        /// Sends a request to the pooled connection and notes the stream its handler now serves.
        func startRequest() throws {
            try test.send()
            _ = try test.upstreamRequest()
            stream = try test.connector.channels[0].pipeline.syncOperations.handler(type: UpstreamConnectionHandler.self).delegate
            #expect(stream != nil)
        }
        do {
            try startRequest()
            try test.respond(status: .ok, body: "ok")
            _ = try test.downstreamResponse()
        }
        #expect(test.connector.channels[0].isActive, "the upstream connection is pooled, not closed")
        #expect(stream == nil, "a finished stream is freed")

        do {
            try startRequest()
            try test.downstream.close().wait()
            test.loop.run()
        }
        #expect(stream == nil, "a stream whose downstream went away mid-request is freed")
    }

    /// Envoy's answer to a request the decoder cannot parse: a 400 "Bad Request", and the connection closes.
    @Test func aRequestTheDecoderCannotParseGets400AndAClose() throws {
        downstream.pipeline.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        let (head, body) = try downstreamResponse()
        #expect(head.status == .badRequest)
        #expect(head.headers.first(name: "connection") == "close")
        #expect(head.headers.first(name: "content-length") == "11")
        #expect(head.headers.first(name: "server") == "envoy")
        #expect(body == "Bad Request")
        #expect(!downstream.isActive, "closed after the reply")
        #expect(counter("http.ingress_http.downstream_cx_protocol_error") == 1)
    }

    /// A parse error after a whole request (a pipelined one's) waits for that request's response,
    /// even one under way, and is answered after it, as Envoy parses the next request only then.
    @Test func aBadPipelinedRequestIsAnsweredAfterTheResponseUnderWay() throws {
        try send()
        _ = try upstreamRequest()
        let channel = connector.channels[0]
        try channel.writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(
            version: .http1_1, status: .ok, headers: ["Content-Length": "4"])))
        guard case .head(let started)? = try downstream.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no response head")
            return
        }
        #expect(started.status == .ok)
        downstream.pipeline.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        #expect(try downstream.readOutbound(as: HTTPServerResponsePart.self) == nil, "no 400 inside the response")
        #expect(downstream.isActive)
        try channel.writeInbound(HTTPClientResponsePart.body(ByteBuffer(string: "done")))
        try channel.writeInbound(HTTPClientResponsePart.end(nil))
        var statuses: [UInt] = []
        while let part = try downstream.readOutbound(as: HTTPServerResponsePart.self) {
            if case .head(let head) = part { statuses.append(head.status.code) }
        }
        #expect(statuses == [400], "the 200 ended, then the 400")
        #expect(!downstream.isActive, "the connection closes")
    }

    /// An error in the request whose response has started (its body, say) cannot be answered: it only closes.
    @Test func noBadRequestInTheMiddleOfAResponse() throws {
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/post",
                                   headers: ["Host": "example.com", "Transfer-Encoding": "chunked"])
        try downstream.writeInbound(HTTPServerRequestPart.head(head))
        _ = try upstreamRequest()
        try connector.channels[0].writeInbound(HTTPClientResponsePart.head(HTTPResponseHead(
            version: .http1_1, status: .ok, headers: ["Content-Length": "4"])))
        guard case .head? = try downstream.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no response head")
            return
        }
        downstream.pipeline.fireErrorCaught(HTTPParserError.invalidChunkSize)
        #expect(try downstream.readOutbound(as: HTTPServerResponsePart.self) == nil, "no 400 inside the response")
        #expect(!downstream.isActive, "the connection closes")
    }

    // MARK: an HTTP/1.1 connection's manager encodes its responses

    @Test func encodesTheResponse() throws {
        let test = try HTTPConnectionManagerTests(encodesResponses: true)
        try test.send()
        _ = try test.upstreamRequest()
        try test.respond(status: .ok, headers: [("Content-Type", "text/plain")], body: "four")
        let text = try test.downstream.writtenText()
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n"))
        #expect(text.contains("\r\nserver: envoy\r\n"))
        #expect(text.hasSuffix("\r\n\r\nfour"))
        #expect(test.downstream.isActive)
    }

    @Test func encodesTheBadRequestReplyAndCloses() throws {
        let test = try HTTPConnectionManagerTests(encodesResponses: true)
        test.downstream.pipeline.fireErrorCaught(HTTPParserError.invalidHeaderToken)
        let text = try test.downstream.writtenText()
        #expect(text.hasPrefix("HTTP/1.1 400 Bad Request\r\ncontent-length: 11\r\ncontent-type: text/plain\r\n"))
        #expect(text.hasSuffix("connection: close\r\n\r\nBad Request"))
        #expect(!test.downstream.isActive)
    }

    /// A header value that may not be sent (a line break would split the message) stops the response and
    /// closes the connection, counted as a protocol error, as the encoder handler's error was.
    @Test func aHeaderThatMayNotBeSentClosesTheConnection() throws {
        let test = try HTTPConnectionManagerTests(encodesResponses: true)
        try test.send()
        _ = try test.upstreamRequest()
        try test.respond(status: .ok, headers: [("x-bad", "a\r\nb")], body: "four")
        #expect(try test.downstream.writtenText() == "", "nothing of the response goes out")
        #expect(!test.downstream.isActive)
        #expect(test.counter("http.ingress_http.downstream_cx_protocol_error") == 1)
    }

    @Test func retriesOn5xxWithBackOff() throws {
        let test = try HTTPConnectionManagerTests(route: RouteAction(
            cluster: "web", retryPolicy: RetryPolicy(retryOn: [.fiveXX], numRetries: 2)))
        try test.send(method: .POST, body: "payload")
        _ = try test.upstreamRequest(0)
        try test.respond(0, status: .serviceUnavailable)
        test.loop.advanceTime(by: .seconds(1))
        #expect(test.connector.channels.count == 2, "the retried response's connection is not reused")
        let retried = try test.upstreamRequest(1)
        #expect(retried.method == .POST)
        guard case .body(.byteBuffer(let body))? = try test.connector.channels[1].readOutbound(as: HTTPClientRequestPart.self)
        else { Issue.record("body not replayed"); return }
        #expect(String(buffer: body) == "payload")
        _ = try test.connector.channels[1].readOutbound(as: HTTPClientRequestPart.self)
        try test.respond(1, status: .ok)
        let (response, _) = try test.downstreamResponse()
        #expect(response.status == .ok)
        #expect(test.counter("cluster.web.upstream_rq_retry") == 1)
        #expect(test.counter("cluster.web.upstream_rq_retry_success") == 1)
        #expect(test.counter("cluster.web.retry.upstream_rq_503") == 1)
        #expect(test.counter("cluster.web.upstream_rq_200") == 1)
    }

    @Test func noRouteIs404() throws {
        let test = try HTTPConnectionManagerTests(pathPrefix: "/api")
        try test.send("/other")
        let (response, body) = try test.downstreamResponse()
        #expect(response.status == .notFound)
        #expect(body.isEmpty)
        #expect(response.headers.first(name: "content-length") == "0")
        #expect(test.connector.channels.isEmpty)
        #expect(test.counter("http.ingress_http.no_route") == 1)
        #expect(test.counter("http.ingress_http.downstream_rq_4xx") == 1)
    }

    @Test func connectFailureGives503WithEnvoysBody() throws {
        connector.refuseConnections = true
        try send()
        let (response, body) = try downstreamResponse()
        #expect(response.status == .serviceUnavailable)
        #expect(body == "upstream connect error or disconnect/reset before headers. reset reason: remote connection failure")
        #expect(counter("cluster.web.upstream_cx_connect_fail") == 1)
        #expect(counter("cluster.web.upstream_rq_503") == 1)
    }

    @Test func routeTimeoutGives504() throws {
        let test = try HTTPConnectionManagerTests(route: RouteAction(cluster: "web", timeoutMs: 200))
        try test.send()
        _ = try test.upstreamRequest()
        test.loop.advanceTime(by: .milliseconds(199))
        #expect(try test.downstream.readOutbound(as: HTTPServerResponsePart.self) == nil)
        test.loop.advanceTime(by: .milliseconds(1))
        let (response, body) = try test.downstreamResponse()
        #expect(response.status == .gatewayTimeout)
        #expect(body == "upstream request timeout")
        #expect(test.counter("cluster.web.upstream_rq_timeout") == 1)
    }

    @Test func resetBeforeHeadersIsRetriedOnReset() throws {
        let test = try HTTPConnectionManagerTests(route: RouteAction(
            cluster: "web", retryPolicy: RetryPolicy(retryOn: [.reset], numRetries: 1)))
        try test.send()
        _ = try test.upstreamRequest(0)
        try test.connector.channels[0].close().wait()
        test.loop.advanceTime(by: .seconds(1))
        _ = try test.upstreamRequest(1)
        try test.respond(1, status: .ok, body: "ok")
        #expect(try test.downstreamResponse().1 == "ok")
        #expect(test.counter("cluster.web.upstream_rq_retry") == 1)
    }

    @Test func hostRewriteKeepsHeaderOrder() throws {
        let test = try HTTPConnectionManagerTests(route: RouteAction(cluster: "web", hostRewriteLiteral: "upstream.internal"))
        try test.send(headers: [("Host", "a.example"), ("Accept", "*/*")])
        let head = try test.upstreamRequest()
        #expect(head.headers.map(\.name) == ["host", "accept", "x-forwarded-proto", "x-request-id",
                                            "x-envoy-expected-rq-timeout-ms", "x-envoy-original-host"])
        #expect(head.headers.first(name: "host") == "upstream.internal")
        #expect(head.headers.first(name: "x-envoy-original-host") == "a.example")
    }

    @Test func aFilterChainChangeDrainsOlderConnections() throws {
        try send()
        _ = try upstreamRequest()
        try respond(status: .ok)
        #expect(try downstreamResponse().0.headers.first(name: "connection") == nil)
        let old = holder.load()
        holder.store(ConnectionManagerConfig(statPrefix: old.statPrefix, routeTable: old.routeTable, clusters: old.clusters,
                                             stats: old.stats, filterChainGeneration: 1))
        try send()
        _ = try upstreamRequest()
        try respond(status: .ok)
        #expect(try downstreamResponse().0.headers.first(name: "connection") == "close")
        #expect(!downstream.isActive, "closed after the response")
    }

    @Test func drainingClosesIdleConnectionsAfterTheDrainTime() throws {
        let tracker = ConnectionTracker()
        let channel = EmbeddedChannel(handler: HTTPConnectionManager(config: holder, tracker: tracker), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        #expect(tracker.count == 1)
        tracker.drainAll(closeAfter: .seconds(2))
        loop.run()
        loop.advanceTime(by: .seconds(1))
        #expect(channel.isActive, "an idle connection gets the drain time to go away by itself")
        loop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(tracker.count == 0)
    }

    @Test func expectContinueIsAnsweredByTheProxy() throws {
        try send(headers: [("Host", "h"), ("Expect", "100-continue")], method: .POST, body: "x")
        guard case .head(let interim)? = try downstream.readOutbound(as: HTTPServerResponsePart.self) else {
            Issue.record("no interim response")
            return
        }
        #expect(interim.status == .continue)
        #expect(try upstreamRequest().headers.first(name: "expect") == nil)
    }
}

@Suite struct RetryBackOffTests {
    @Test func followsEnvoysJitteredExponentialCeiling() {
        let backOff = RetryBackOff(baseMs: 25, maxMs: 250)
        #expect(backOff.delayMs(retry: 1, random: 24) == 24)
        #expect(backOff.delayMs(retry: 1, random: 25) == 0)
        #expect(backOff.delayMs(retry: 2, random: 74) == 74)
        #expect(backOff.delayMs(retry: 3, random: 174) == 174)
        #expect(backOff.delayMs(retry: 5, random: 700) == 250)
    }

    @Test func headersAdjustThePolicy() {
        let headers = HTTPHeaders([("x-envoy-retry-on", "connect-failure,bogus"), ("x-envoy-max-retries", "4")])
        let policy = ActiveStream.effectivePolicy(nil, headers: headers)
        #expect(policy?.retryOn == [.connectFailure])
        #expect(policy?.numRetries == 4)
        #expect(ActiveStream.effectivePolicy(nil, headers: HTTPHeaders()) == nil)
    }

    @Test func headersAdjustARoutesPolicyWithoutChangingIt() throws {
        let route = RetryPolicy(retryOn: [.fiveXX], numRetries: 1, perTryTimeoutMs: 300,
                                resetHeaders: [.init(name: "retry-after", isUnixTimestamp: false)])
        let headers = HTTPHeaders([("x-envoy-retry-on", "reset"), ("x-envoy-max-retries", "3")])
        let policy = try #require(ActiveStream.effectivePolicy(route, headers: headers))
        #expect(policy.retryOn == [.fiveXX, .reset])
        #expect(policy.numRetries == 3)
        #expect(policy.perTryTimeoutMs == 300 && policy.resetHeaders.map(\.name) == ["retry-after"], "the rest is the route's")
        #expect(route.retryOn == [.fiveXX] && route.numRetries == 1, "the route's policy is shared, not changed")
        #expect(ActiveStream.effectivePolicy(route, headers: HTTPHeaders()) === route, "no headers: the route's own")
        #expect(ActiveStream.effectivePolicy(route, headers: HTTPHeaders([("x-envoy-max-retries", "-1")])) === route)
    }
}
