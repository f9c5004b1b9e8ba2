import NIOCore
import NIOHTTP1
import ProxyAccessLog
import ProxyCore
import ProxyRouting
import ProxyTracing
import ProxyUpstream

/// One request through the router: route, pick a host, send, retry on Envoy's conditions, time out,
/// and stream the response back. Lives on its connection's event loop only.
final class ActiveStream: UpstreamResponseDelegate {
    private let manager: HTTPConnectionManager
    private let config: ConnectionManagerConfig
    private let loop: any EventLoop
    private var downstreamHead: HTTPRequestHead
    private let startTime: NIODeadline

    private var route: RouteEntry?
    /// The forwarding action of `route`, read in place (a route is shared, not copied per request).
    private var action: RouteAction? { route?.action }
    /// The `location` of a redirect route's reply.
    private var redirectLocation: String?
    /// Header edits for this request: weighted-cluster, route, virtual host, route configuration.
    private var headerEdits = HeaderEdits()
    private var cluster: Cluster?
    /// The cluster's circuit breaker of the route's priority.
    private var resources: PriorityResources?
    private var policy: RetryPolicy?
    private var upstreamHead: HTTPRequestHead
    private var timeoutMs: Int64 = 0
    private var isExternal = true
    private var isGRPC = false
    /// Hosts this request's attempts went to, for `retry_host_predicate` previous_hosts.
    private var triedHosts: [ObjectIdentifier] = []
    /// Set once an `auto_config` attempt moved to the pool ALPN chose (at most once per stream).
    private var alpnRedispatched = false
    /// The call grpc_stats counts, when it is configured and this is a gRPC request.
    private var grpcCall: GRPCStatsFilter.Call?
    /// A filter's delay in progress (the fault filter), and what to call when it ends.
    private var filterDelay: (task: Scheduled<Void>, ended: (@Sendable () -> Void)?)?
    /// Headers the filters want on the upstream's response (CORS).
    private var filterResponseHeaders: [(String, String)] = []
    /// Cookies a `hash_policy` with a `ttl` made for this request, for the response.
    private var setCookies: [String] = []
    /// Why the last connection to the upstream failed, when a socket error said so.
    private var transportFailureReason: String?
    /// The request asked for an HTTP/1.1 upgrade (so NIO's decoder stopped after it).
    private var upgradeAsked = false
    /// The configured upgrade being attempted (`websocket`): forwarded, and tunnelled on a 101.
    private var upgradeType: String?
    private var keepAlive: Bool

    // Request body: parts not yet written to the current attempt, and a copy for retries.
    /// An empty array costs no allocation; most requests never queue a part.
    private var unsentBody: [ByteBuffer] = []
    private var unsentBytes = 0
    private var retryBody: [ByteBuffer] = []
    private var retryBodyBytes = 0
    private var bodyRetainable = true
    private var requestEnded = false
    private var requestTrailers: HTTPHeaders?

    // The current attempt.
    private var attempt = 0
    private var connection: UpstreamConnection?
    /// The pool of the current attempt's connection.
    private var pool: ConnectionPool?
    private var attemptHost: Host?
    private var retriesUsed = 0
    private var holdsRetrySlot = false
    private var perTryTimer: Scheduled<Void>?
    /// When the route timeout runs out; the connection manager's timeout check acts on it, so a
    /// request schedules no timer of its own for it.
    private var globalDeadline: NIODeadline?
    private var backOffTimer: Scheduled<Void>?
    /// The stream's maximum duration (a gRPC client's deadline), when the route honours it.
    private var durationTimer: Scheduled<Void>?

    private var responseStarted = false
    private var responseComplete = false
    private var flags: ResponseFlags = []
    /// Present only when the connection manager has access loggers or a tracer.
    private var log: StreamLog?
    /// The `hash_policy` hash, for ring-hash and Maglev clusters.
    private var requestHash: UInt64?
    /// Clusters that get a copy of this request (`request_mirror_policies` that sampled it).
    private var mirrors: [(policy: RouteAction.MirrorPolicy, cluster: Cluster)] = []
    /// The request's span, when the connection manager traces.
    private var span: RequestSpan?
    /// When data last moved for this stream, either way: the base of its idle timeouts.
    private var lastActivity: NIODeadline
    /// The idle timeout in force: the route's `idle_timeout`, else the HCM's `stream_idle_timeout`.
    private var idleTimeout: TimeAmount?
    /// `per_try_idle_timeout`'s check for the current attempt, and when that attempt started.
    private var perTryIdleTimer: Scheduled<Void>?
    private var attemptStartedAt = NIODeadline.distantPast

    /// - Parameter draining: the connection's listener changed its filter chain: answer this request
    ///   with `connection: close` and close the connection after it, as Envoy drains.
    /// - Parameter keepAlive: the request lets the connection stay open (its version and `connection`).
    init(manager: HTTPConnectionManager, config: ConnectionManagerConfig, head: HTTPRequestHead, keepAlive: Bool,
         loop: any EventLoop, draining: Bool = false) {
        self.manager = manager
        self.config = config
        self.loop = loop
        self.downstreamHead = head
        self.upstreamHead = head
        // An HTTP/2 stream never closes its connection; the connection drains with GOAWAY.
        self.keepAlive = manager.isHTTP2 || (keepAlive && !draining)
        let now = loop.now
        self.startTime = now
        self.lastActivity = now
        self.idleTimeout = config.timeouts.streamIdle
        if !config.accessLoggers.isEmpty || config.tracer != nil { log = StreamLog() }
    }

    // MARK: request

    func start() {
        let stats = config.stats
        stats.downstreamRqTotal.increment()
        if manager.isHTTP2 {
            stats.downstreamRqHttp2Total.increment()
        } else {
            stats.downstreamRqHttp1Total.increment()
        }
        stats.downstreamRqActive.increment()

        if downstreamHead.headers.count > config.maxRequestHeadersCount {
            if !manager.isHTTP2 { keepAlive = false }
            finish(localReply: .tooManyHeaders)
            return
        }
        if config.underscoreHeaders != .allow,
           downstreamHead.headers.contains(where: { $0.name.utf8.contains(UInt8(ascii: "_")) }) {
            let http2 = manager.isHTTP2
            if config.underscoreHeaders == .reject {
                (http2 ? stats.rejectedUnderscoreHeaders.http2 : stats.rejectedUnderscoreHeaders.http1).increment()
                if !http2 { keepAlive = false }
                finish(localReply: .underscoreHeader(http2: http2))
                return
            }
            var kept = HTTPHeaders()
            for (name, value) in downstreamHead.headers {
                if name.utf8.contains(UInt8(ascii: "_")) {
                    (http2 ? stats.droppedUnderscoreHeaders.http2 : stats.droppedUnderscoreHeaders.http1).increment()
                } else {
                    kept.add(name: name, value: value)
                }
            }
            downstreamHead.headers = kept
            upstreamHead.headers = kept
        }
        if config.pathNormalizer.isActive, downstreamHead.method != .CONNECT {
            // Routing, filters and the upstream all see the normalized path, as in Envoy.
            downstreamHead.uri = config.pathNormalizer.apply(to: downstreamHead.uri)
            upstreamHead.uri = downstreamHead.uri
        }
        // Internal or not, and x-forwarded-for and friends, before routing sees the headers (as Envoy).
        isExternal = !config.forwardedFor.apply(to: &downstreamHead.headers, peer: manager.channel?.remoteAddress,
                                                scheme: manager.tls == nil ? "http" : "https")
        upstreamHead.headers = downstreamHead.headers
        let headers = downstreamHead.headers
        isGRPC = GRPC.isGRPC(headers)
        if isGRPC, config.grpcStats != nil { grpcCall = GRPCStatsFilter.Call(path: Substring(downstreamHead.uri)) }
        if let tracer = config.tracer {
            span = tracer.start(headers) { manager.requestIDs.nextRandom() }
        }
        // CONNECT is an upgrade of its own kind (NIO's HTTP/1.1 decoder stops after it too); on HTTP/2
        // only an extended CONNECT carries upgrade headers (HTTP2ExtendedConnect puts them there).
        if let upgrade = downstreamHead.method == .CONNECT ? "connect" : Self.requestedUpgrade(headers) {
            upgradeAsked = true
            // h2c is ignored; whether another upgrade may go ahead depends on the route too.
            if upgrade != "h2c" { upgradeType = upgrade }
        }
        let (path, query) = Self.pathAndQuery(downstreamHead.uri)
        let method = downstreamHead.method
        route = config.routeTable.route(host: headers.first(name: "host") ?? "", path: path, query: query,
                                        header: { $0 == ":method" ? method.rawValue : headers.first(name: $0) },
                                        random: { manager.requestIDs.nextRandom() })
        if config.filters.isEmpty {
            routeRequest()
        } else {
            runFilters(from: 0, path: path)
        }
    }

    private static func pathAndQuery(_ uri: String) -> (path: Substring, query: Substring?) {
        let queryStart = uri.firstIndex(of: "?")
        return (queryStart.map { uri[..<$0] } ?? uri[...], queryStart.map { uri[uri.index(after: $0)...] })
    }

    /// The HTTP filters from `first` on, then the router; a filter's delay resumes them on a timer.
    private func runFilters(from first: Int, path: Substring) {
        let request = HTTPFilterRequest(head: downstreamHead, path: path, route: route, channel: manager.channel,
                                        tls: manager.tls, isGRPC: isGRPC, random: { [manager] in manager.requestIDs.nextRandom() })
        for index in first..<config.filters.count {
            let decision = config.filters[index].decodeHeaders(request)
            flags.insert(decision.flags)
            filterResponseHeaders += decision.responseHeaders
            if let delay = decision.delay {
                filterDelay = (loop.assumeIsolated().scheduleTask(in: delay) { [self] in
                    filterDelay?.ended?()
                    filterDelay = nil
                    guard !responseComplete else { return }
                    if let reply = decision.reply {
                        finish(localReply: reply)
                    } else {
                        runFilters(from: index + 1, path: Self.pathAndQuery(downstreamHead.uri).path)
                    }
                }, decision.delayEnded)
                return
            }
            if let reply = decision.reply {
                finish(localReply: reply)
                return
            }
        }
        routeRequest()
    }

    /// After the filters: the route's answer, or the request on its way to the route's cluster.
    private func routeRequest() {
        let stats = config.stats
        let headers = downstreamHead.headers
        let uri = downstreamHead.uri
        guard let route else {
            stats.noRoute.increment()
            finish(localReply: .noRoute)
            return
        }
        if let upgradeType {
            // Envoy refuses upgrades that neither the route nor the connection manager enables, and closes.
            var enabled = config.upgradeTypes[upgradeType] ?? false
            if let override = route.action?.upgradeOverrides[upgradeType] {
                enabled = override
            }
            guard enabled else {
                if !manager.isHTTP2 { keepAlive = false }
                finish(localReply: .upgradeForbidden)
                return
            }
        }
        headerEdits = route.headerEdits
        // Routes the proxy answers itself; matched without copying a forwarding route's action.
        guard let action = route.action else {
            if case .directResponse(let status, let body) = route.kind {
                stats.rqDirectResponse.increment()
                finish(localReply: LocalReply(status: HTTPResponseStatus(statusCode: status), body: body, flags: [],
                                              contentType: "text/plain"))
            } else if case .redirect(let redirect) = route.kind {
                stats.rqRedirect.increment()
                let scheme = headers.first(name: "x-forwarded-proto") ?? "http"
                let host = headers.first(name: "host") ?? ""
                redirectLocation = redirect.location(requestScheme: scheme, requestHost: host, uri: uri,
                                                     matched: route.match.path)
                finish(localReply: LocalReply(status: HTTPResponseStatus(statusCode: redirect.status), body: "", flags: []))
            }
            return
        }
        if let routeIdle = action.idleTimeoutMs {
            idleTimeout = routeIdle > 0 ? .milliseconds(routeIdle) : nil
            if let idleTimeout { manager.ensureTimeoutCheck(by: lastActivity + idleTimeout) }
        }
        var (clusterName, weightedEdits) = action.pickCluster(random: action.weightedClusters.isEmpty ? 0 : manager.requestIDs.nextRandom())
        if let clusterHeader = action.clusterHeader { clusterName = headers.first(name: clusterHeader) ?? "" }
        if let weightedEdits { headerEdits = weightedEdits.then(headerEdits) }
        guard let cluster = config.clusters[clusterName] else {
            stats.noCluster.increment()
            finish(localReply: .noCluster)
            return
        }
        self.cluster = cluster
        resources = cluster.resources(action.priority)
        stats.rqTotal.increment()
        if !action.hashPolicies.isEmpty, cluster.loadBalancer.isConsistentHashing {
            requestHash = RouteAction.HashPolicy.hash(
                action.hashPolicies, header: { headers.first(name: $0) }, query: Self.pathAndQuery(uri).query,
                sourceIP: { [manager] in manager.channel?.remoteAddress?.ipAddress },
                connectionCookie: { [manager] in
                    guard let remote = manager.channel?.remoteAddress?.logDescription,
                          let local = manager.channel?.localAddress?.logDescription else { return nil }
                    return RouteAction.HashPolicy.connectionCookieValue(remote: remote, local: local)
                },
                setCookie: { setCookies.append($0) })
        }

        timeoutMs = action.timeoutMs
        // The stream's longest life: the route's max_stream_duration, else the connection manager's.
        var durationMs = action.maxStreamDurationMs ?? config.timeouts.maxStreamDuration.map { $0.nanoseconds / 1_000_000 } ?? 0
        if isGRPC, let grpcMax = action.grpcTimeoutHeaderMaxMs {
            // As Envoy: the client's deadline bounds the whole stream (0: none), less the offset and
            // capped at the maximum; the route timeout still applies to the upstream request.
            var grpcTimeout = headers.first(name: "grpc-timeout").flatMap(GRPC.timeoutMilliseconds) ?? 0
            let offset = action.grpcTimeoutHeaderOffsetMs
            if offset > 0, grpcTimeout > offset { grpcTimeout -= offset }
            if grpcMax > 0, grpcTimeout == 0 || grpcTimeout > grpcMax { grpcTimeout = grpcMax }
            if grpcTimeout > 0 { durationMs = grpcTimeout }
        }
        if durationMs > 0 {
            let elapsed = (loop.now - startTime).nanoseconds / 1_000_000
            durationTimer = loop.assumeIsolated().scheduleTask(in: .milliseconds(max(0, durationMs - elapsed))) { [self] in
                onDurationTimeout()
            }
        }
        // Only an internal request may set its own timeout and retries (Envoy ignores them otherwise).
        if !isExternal, let override = headers.first(name: "x-envoy-upstream-rq-timeout-ms").flatMap({ Int64($0) }) {
            timeoutMs = override
        }
        policy = isExternal ? action.retryPolicy : Self.effectivePolicy(action.retryPolicy, headers: headers)
        for mirror in action.mirrors where mirror.samples(manager.requestIDs.nextRandom()) {
            if let target = config.clusters[mirror.cluster] { mirrors.append((mirror, target)) }
        }
        // The body is kept for retries and for mirrors, which get it once the request has ended.
        if (policy == nil || policy!.numRetries == 0) && mirrors.isEmpty { bodyRetainable = false }

        if headers.first(name: "expect")?.lowercased() == "100-continue" {
            // Envoy answers 100-continue itself and does not forward the expectation.
            manager.write(.head(HTTPResponseHead(version: downstreamHead.version, status: .continue)), flush: true)
        }
        if upgradeType == "connect", action.terminatesConnect {
            terminateConnect(cluster)
            return
        }
        upstreamHead = buildUpstreamHead()
        if timeoutMs > 0 {
            let deadline = loop.now + .milliseconds(timeoutMs)
            globalDeadline = deadline
            manager.ensureTimeoutCheck(by: deadline)
        }
        startAttempt()
    }

    /// A CONNECT whose route has `connect_config`: the proxy is the tunnel's end. It opens a TCP
    /// connection to a host of the cluster, answers 200 and joins the two; a failed connect is a 503 UF.
    private func terminateConnect(_ cluster: Cluster) {
        guard let host = cluster.pickHost(hash: requestHash) else {
            cluster.stats.upstreamCxNoneHealthy.increment()
            finish(localReply: .noHealthyUpstream)
            return
        }
        attempt += 1
        let thisAttempt = attempt
        attemptHost = host
        let stats = cluster.stats
        stats.upstreamRqTotal.increment()
        stats.upstreamRqActive.increment()
        host.stats.rqTotal.wrappingAdd(1, ordering: .relaxed)
        host.stats.rqActive.wrappingAdd(1, ordering: .relaxed)
        cluster.connectTunnel(to: host, on: loop)
            .assumeIsolated().whenComplete { [self] result in
                switch result {
                case .success(let channel):
                    guard thisAttempt == attempt, !responseComplete, let downstream = manager.channel else {
                        channel.close(promise: nil)
                        return
                    }
                    host.stats.rqSuccess.wrappingAdd(1, ordering: .relaxed)
                    connectTunnelEstablished(downstream: downstream, upstream: channel)
                case .failure(let error):
                    guard thisAttempt == attempt, !responseComplete else { return }
                    host.stats.rqError.wrappingAdd(1, ordering: .relaxed)
                    reportLocalOrigin(host, failed: true, status: 503)
                    endAttempt(discard: false)
                    flags.insert(.upstreamConnectionFailure)
                    transportFailureReason = TransportFailure.reason(error)
                    finish(localReply: .reset(reason: "remote connection failure", retried: false, flags: flags,
                                              transportFailure: transportFailureReason))
                }
            }
    }

    private func connectTunnelEstablished(downstream: any Channel, upstream: any Channel) {
        recordUpstreamCompletion(status: 200)
        lastStatus = 200
        responseStarted = true
        log?.details = "via_upstream"
        var headers = HTTPHeaders()
        headers.add(name: "date", value: manager.dates.current())
        headers.add(name: "server", value: config.serverName)
        let response = HTTPResponseHead(version: downstreamHead.version, status: .ok, headers: headers)
        let overHTTP2 = manager.isHTTP2
        if overHTTP2 { writeResponseHead(response, flush: true) }
        becameTunnel(status: 200)
        do {
            if overHTTP2 {
                try HTTPUpgradeTunnel.splice(downstreamStream: downstream, upstream: upstream, raw: true)
            } else {
                try HTTPUpgradeTunnel.splice(connectDownstream: downstream, rawUpstream: upstream,
                                             response: Self.encoded(response))
            }
        } catch {
            downstream.close(promise: nil)
            upstream.close(promise: nil)
        }
    }

    /// The route's policy, adjusted by `x-envoy-retry-on` and `x-envoy-max-retries` as Envoy allows.
    static func effectivePolicy(_ routePolicy: RetryPolicy?, headers: HTTPHeaders) -> RetryPolicy? {
        var retryOn = routePolicy?.retryOn ?? []
        for header in ["x-envoy-retry-on", "x-envoy-retry-grpc-on"] {
            guard let text = headers.first(name: header) else { continue }
            retryOn.formUnion(RetryPolicy.Conditions(parsing: text))
        }
        let base = routePolicy ?? (retryOn.isEmpty ? nil : RetryPolicy())
        guard let base else { return nil }
        var numRetries = base.numRetries
        if let max = headers.first(name: "x-envoy-max-retries").flatMap({ Int($0) }), max >= 0 { numRetries = max }
        guard retryOn != base.retryOn || numRetries != base.numRetries else { return base }
        return base.with(retryOn: retryOn, numRetries: numRetries)
    }

    /// The lower-cased `upgrade` of an HTTP/1.1 request whose `connection` lists `upgrade`.
    static func requestedUpgrade(_ headers: HTTPHeaders) -> String? {
        guard let upgrade = headers.first(name: "upgrade"),
              headers[canonicalForm: "connection"].contains(where: { $0.lowercased() == "upgrade" })
        else { return nil }
        return upgrade.lowercased()
    }

    private static let defaultTimeoutText = String(RouteAction.defaultTimeoutMs)

    /// Whether a request head announces a body (chunked, or a non-zero content-length).
    static func mayHaveBody(_ headers: HTTPHeaders) -> Bool {
        if headers.contains(name: "transfer-encoding") { return true }
        guard let length = headers.first(name: "content-length") else { return false }
        return length != "0"
    }

    private func buildUpstreamHead() -> HTTPRequestHead {
        // Built as a list and wrapped once: HTTPHeaders.add checks every name it is given for ASCII,
        // and the encoder validates every name and value again on the way out.
        var headers: [(String, String)] = []
        headers.reserveCapacity(downstreamHead.headers.count + 4)
        var sawForwardedProto = false
        var sawRequestID = false
        let clientCert = config.forwardClientCert.action(tls: manager.tls)
        // Names arrive in lower case: from the HTTP/1 parser so, on HTTP/2 so (the stream reader refuses others), and
        // from unit tests' parts through the connection manager's `channelRead`, which lower-cases them.
        for (lower, value) in downstreamHead.headers {
            switch ProxiedRequestHeader(lowercased: lower) {
            case .consumed:
                continue
            case .forwardedClientCert:
                switch clientCert {
                case .keep: break
                case .append(let element):
                    headers.append((lower, value + "," + element))
                    continue
                case .remove, .replace: continue
                }
            case .te:
                if value.lowercased() != "trailers" { continue }
            case .forwardedProto:
                sawForwardedProto = true
            case .requestID:
                sawRequestID = true
                if let span {
                    // The trace decision is written into the request id, as Envoy does.
                    let marked = span.decision.marked(requestID: value)
                    log?.requestID = marked
                    headers.append((lower, marked))
                    continue
                }
            case .other:
                break
            }
            // The span's context replaces the caller's (B3 or W3C, as the tracer speaks).
            if span != nil, let tracer = config.tracer, tracer.replacesHeader(lower) { continue }
            headers.append((lower, value))
        }
        if upgradeType != nil, let upgrade = downstreamHead.headers.first(name: "upgrade") {
            headers.append(("upgrade", upgrade))
            headers.append(("connection", "upgrade"))
        }
        if !sawForwardedProto { headers.append(("x-forwarded-proto", manager.tls == nil ? "http" : "https")) }
        switch clientCert {
        case .replace(let element):
            headers.append((ForwardClientCert.header, element))
        case .append(let element) where !downstreamHead.headers.contains(name: ForwardClientCert.header):
            headers.append((ForwardClientCert.header, element))
        default: break
        }
        if !sawRequestID {
            var id = manager.requestIDs.next()
            if let span { id = span.decision.marked(requestID: id) }
            if log != nil { log!.requestID = id }
            headers.append(("x-request-id", id))
        }
        if timeoutMs > 0 {
            let perTry = policy?.perTryTimeoutMs ?? 0
            let expected = perTry > 0 && perTry < timeoutMs ? perTry : timeoutMs
            let text = expected == RouteAction.defaultTimeoutMs ? Self.defaultTimeoutText : String(expected)
            headers.append(("x-envoy-expected-rq-timeout-ms", text))
        }
        if let span, let tracer = config.tracer {
            headers += tracer.propagationHeaders(span)
        }
        var uri = downstreamHead.uri
        if let route, let action, action.prefixRewrite != nil || action.regexRewrite != nil {
            let queryStart = uri.firstIndex(of: "?") ?? uri.endIndex
            uri = action.rewrittenPath(String(uri[..<queryStart]), matched: route.match.path) + uri[queryStart...]
        }
        if !headerEdits.requestAdd.isEmpty || !headerEdits.requestRemove.isEmpty {
            HeaderEdits.apply(remove: headerEdits.requestRemove, add: headerEdits.requestAdd, to: &headers) { [self] in
                $0.render(formatContext(status: 0), missing: "")
            }
        }
        return HTTPRequestHead(version: .http1_1, method: downstreamHead.method, uri: uri, headers: HTTPHeaders(headers))
    }

    /// The upstream head for one attempt: Host rewritten for the chosen host where the route says so.
    private func head(for host: Host) -> HTTPRequestHead {
        guard let action else { return upstreamHead }
        let newHost: String?
        if let literal = action.hostRewriteLiteral {
            newHost = literal
        } else if let header = action.hostRewriteHeader, let value = downstreamHead.headers.first(name: header) {
            newHost = value
        } else if action.autoHostRewrite, !host.hostname.isEmpty {
            newHost = host.hostname
        } else {
            newHost = nil
        }
        guard let newHost else { return upstreamHead }
        // Host keeps its place in the header list (NIO's replaceOrAdd would move it to the end).
        var headers: [(String, String)] = []
        headers.reserveCapacity(upstreamHead.headers.count + 1)
        var original: String?
        for (name, value) in upstreamHead.headers {
            if name == "host" {
                original = value
                headers.append(("host", newHost))
            } else {
                headers.append((name, value))
            }
        }
        headers.append(original.map { ("x-envoy-original-host", $0) } ?? ("host", newHost))
        var head = upstreamHead
        head.headers = HTTPHeaders(headers)
        return head
    }

    func requestBody(_ body: ByteBuffer) {
        lastActivity = loop.now
        log?.bytesReceived += UInt64(body.readableBytes)
        grpcCall?.requestMessages.consume(body)
        guard !responseComplete else { return }
        if bodyRetainable {
            retryBody.append(body)
            retryBodyBytes += body.readableBytes
            if retryBodyBytes > config.retryBufferLimit {
                // Too large to replay: this request will not be retried (Envoy counts it abandoned).
                bodyRetainable = false
                retryBody = []
                cluster?.stats.retryOrShadowAbandoned.increment()
            }
        }
        if let connection {
            connection.handler.write(.body(.byteBuffer(body)))
            connection.handler.flush()
            if !connection.channel.isWritable { manager.pauseReading() }
        } else {
            unsentBody.append(body)
            unsentBytes += body.readableBytes
            if unsentBytes > 65_536 { manager.pauseReading() }
        }
    }

    func requestEnd(_ trailers: HTTPHeaders?) {
        requestEnded = true
        if !mirrors.isEmpty { sendMirrors() }
        if log != nil { log!.requestEnd = loop.now }
        requestTrailers = trailers
        if responseComplete {
            manager.streamFinished(self)
            return
        }
        if let connection {
            connection.handler.write(.end(trailers))
            connection.handler.flush()
        }
    }

    // MARK: attempts

    private func startAttempt() {
        guard let cluster, !responseComplete else { return }
        backOffTimer = nil
        guard var host = cluster.pickHost(hash: requestHash) else {
            cluster.stats.upstreamCxNoneHealthy.increment()
            finish(localReply: .noHealthyUpstream)
            return
        }
        if let policy, policy.avoidsPreviousHosts, !triedHosts.isEmpty {
            // retry_host_predicate previous_hosts: pick again, up to host_selection_retry_max_attempts times.
            var tries = 0
            while triedHosts.contains(ObjectIdentifier(host)), tries < policy.hostSelectionAttempts,
                  let other = cluster.pickHost(hash: requestHash.map { $0 &+ UInt64(tries + 1) &* 0x9E37_79B9_7F4A_7C15 }) {
                host = other
                tries += 1
            }
        }
        if policy?.avoidsPreviousHosts == true { triedHosts.append(ObjectIdentifier(host)) }
        if let autoSNI = cluster.autoSNI,
           let name = autoSNI.overrideHeader.flatMap({ downstreamHead.headers.first(name: $0) })
               ?? head(for: host).headers.first(name: "host") {
            // auto_sni: this request's host is the TLS server name; connections are pooled per name.
            host = cluster.host(host, sni: AutoSNI.serverName(fromHost: name), on: loop)
        }
        guard let resources, resources.tryAcquireRequest() else {
            cluster.stats.upstreamRqActiveOverflow.increment()
            finish(localReply: .overflow)
            return
        }
        attempt += 1
        let thisAttempt = attempt
        attemptHost = host
        cluster.stats.upstreamRqTotal.increment()
        cluster.stats.upstreamRqActive.increment()
        host.stats.rqTotal.wrappingAdd(1, ordering: .relaxed)
        host.stats.rqActive.wrappingAdd(1, ordering: .relaxed)
        if let perTry = policy?.perTryTimeoutMs, perTry > 0 {
            perTryTimer = loop.assumeIsolated().scheduleTask(in: .milliseconds(perTry)) { [self] in onPerTryTimeout(thisAttempt) }
        }
        if let perTryIdle = policy?.perTryIdleTimeoutMs, perTryIdle > 0 {
            attemptStartedAt = loop.now
            armPerTryIdleCheck(thisAttempt, at: attemptStartedAt + .milliseconds(perTryIdle))
        }
        // A new attempt replays the whole body seen so far.
        if thisAttempt > 1 {
            unsentBody = retryBody
            unsentBytes = retryBodyBytes
        }
        let pool = cluster.pool(on: loop, host: host, downstreamHTTP2: manager.isHTTP2, priority: resources.priority)
        self.pool = pool
        // An idle connection is taken synchronously, without the completion closure the general path allocates.
        if let connection = pool.takeIdle(host: host, delegate: self) {
            acquired(.success(connection), waited: false, attempt: thisAttempt, cluster: cluster, host: host, pool: pool)
            return
        }
        pool.connectOrWait(host: host, delegate: self) { [self] result, waited in
            acquired(result, waited: waited, attempt: thisAttempt, cluster: cluster, host: host, pool: pool)
        }
    }

    /// The pool's answer for one attempt: a connection to send on, or why there is none.
    private func acquired(_ result: Result<UpstreamConnection, any Error>, waited: Bool, attempt thisAttempt: Int,
                          cluster: Cluster, host: Host, pool: ConnectionPool) {
        if waited { cluster.stats.upstreamRqPendingTotal.increment() }
        guard thisAttempt == attempt, !responseComplete else {
            // The attempt was abandoned while connecting (timeout, downstream gone).
            if case .success(let connection) = result { pool.release(connection) }
            return
        }
        switch result {
        case .success(let connection):
            self.connection = connection
            reportLocalOrigin(host, failed: false, status: 0)
            send(on: connection, host: host)
        case .failure(let error) where error is CircuitBreakerOverflow:
            endAttempt(discard: false)
            finish(localReply: .overflow)
        case .failure(let error) where error is ALPNMismatch && !alpnRedispatched:
            // The host told its protocol by ALPN: the same attempt goes to that protocol's pool.
            alpnRedispatched = true
            endAttempt(discard: false)
            startAttempt()
        case .failure(let error):
            cluster.stats.upstreamRqPendingFailureEject.increment()
            host.stats.rqError.wrappingAdd(1, ordering: .relaxed)
            reportLocalOrigin(host, failed: true, status: 503)
            endAttempt(discard: false)
            transportFailureReason = TransportFailure.reason(error)
            attemptFailed(.connectFailure, reason: "remote connection failure", flags: .upstreamConnectionFailure)
        }
    }

    private func send(on connection: UpstreamConnection, host: Host) {
        if log != nil {
            log!.upstreamHost = host.addressDescription
            log!.upstreamLocalAddress = connection.channel.localAddress?.logDescription
        }
        connection.handler.write(.head(head(for: host)))
        for part in unsentBody {
            connection.handler.write(.body(.byteBuffer(part)))
        }
        unsentBody.removeAll()
        unsentBytes = 0
        if requestEnded { connection.handler.write(.end(requestTrailers)) }
        connection.handler.flush()
        manager.resumeReading()
    }

    /// Ends the current attempt's accounting; `discard` closes its connection (response abandoned).
    private func endAttempt(discard: Bool) {
        perTryTimer?.cancel()
        perTryTimer = nil
        perTryIdleTimer?.cancel()
        perTryIdleTimer = nil
        if let host = attemptHost {
            host.stats.rqActive.wrappingSubtract(1, ordering: .relaxed)
            cluster?.stats.upstreamRqActive.decrement()
            resources?.releaseRequest()
            attemptHost = nil
        }
        if let connection, discard {
            pool?.discard(connection)
        }
        connection = nil
        releaseRetrySlot()
    }

    private func releaseRetrySlot() {
        if holdsRetrySlot {
            holdsRetrySlot = false
            resources?.releaseRetry()
        }
    }

    /// Whether another try is allowed; counts Envoy's limit and overflow stats when it is not.
    private func mayRetry() -> Bool {
        guard let policy, let cluster else { return false }
        let head = downstreamHead
        guard policy.allowsRetry(requestHeader: { name in
            switch name {
            case ":method": head.method.rawValue
            case ":path": head.uri
            default: head.headers.first(name: name)
            }
        }) else { return false }
        guard retriesUsed < policy.numRetries else {
            cluster.stats.upstreamRqRetryLimitExceeded.increment()
            flags.insert(.upstreamRetryLimitExceeded)
            return false
        }
        guard bodyRetainable || (retryBodyBytes == 0 && requestEnded) else { return false }
        guard let resources, resources.tryAcquireRetry() else {
            cluster.stats.upstreamRqRetryOverflow.increment()
            return false
        }
        holdsRetrySlot = true
        return true
    }

    /// `response`: the answer that is being retried, whose reset headers may say when to try again.
    private func scheduleRetry(after response: HTTPResponseHead? = nil) {
        guard let cluster, let policy else { return }
        retriesUsed += 1
        cluster.stats.upstreamRqRetry.increment()
        let random = UInt64.random(in: 0 ... .max)
        let delay: Int64
        if let response, !policy.resetHeaders.isEmpty,
           let interval = policy.resetIntervalMs(header: { response.headers.first(name: $0) },
                                                 nowSeconds: wallClockNow().timeIntervalSince1970) {
            // As Envoy: the header's interval, jittered up by at most half of it.
            cluster.stats.upstreamRqRetryBackoffRateLimited.increment()
            delay = interval + Int64(random % UInt64(max(1, interval / 2)))
        } else {
            cluster.stats.upstreamRqRetryBackoffExponential.increment()
            delay = RetryBackOff(baseMs: policy.backOffBaseMs, maxMs: policy.backOffMaxMs).delayMs(retry: retriesUsed, random: random)
        }
        backOffTimer = loop.assumeIsolated().scheduleTask(in: .milliseconds(delay)) { [self] in startAttempt() }
    }

    private func attemptFailed(_ failure: UpstreamFailure, reason: String, flags failureFlags: ResponseFlags,
                               timeoutReply: LocalReply = .timeout) {
        flags.insert(failureFlags)
        if let policy, policy.retries(failure: failure), mayRetry() {
            scheduleRetry()
            return
        }
        if failure == .perTryTimeout {
            finish(localReply: timeoutReply)
        } else {
            finish(localReply: .reset(reason: reason, retried: retriesUsed > 0, flags: flags,
                                      transportFailure: transportFailureReason))
        }
    }

    private func onPerTryTimeout(_ timedOutAttempt: Int) {
        guard timedOutAttempt == attempt, !responseStarted, !responseComplete else { return }
        cluster?.stats.upstreamRqPerTryTimeout.increment()
        attemptHost?.stats.rqTimeout.wrappingAdd(1, ordering: .relaxed)
        if let host = attemptHost { reportLocalOrigin(host, failed: true, status: 504) }
        attempt += 1  // a connect still in flight belongs to no one now
        endAttempt(discard: true)
        attemptFailed(.perTryTimeout, reason: "per try timeout", flags: .upstreamRequestTimeout)
    }

    private func onGlobalTimeout() {
        guard !responseComplete else { return }
        cluster?.stats.upstreamRqTimeout.increment()
        attemptHost?.stats.rqTimeout.wrappingAdd(1, ordering: .relaxed)
        backOffTimer?.cancel()
        attempt += 1
        endAttempt(discard: true)
        if responseStarted {
            abortDownstream()
        } else {
            finish(localReply: .timeout)
        }
    }

    private func onDurationTimeout() {
        guard !responseComplete else { return }
        config.stats.downstreamRqMaxDurationReached.increment()
        endedByConnectionManager(reply: .durationTimeout(requestComplete: requestEnded))
    }

    /// Called by the connection manager's timeout check: acts on `request_timeout`, the route timeout
    /// or the idle timeout if due, else returns the next deadline (nil: none, or the stream is done).
    func checkTimeouts(now: NIODeadline, requestTimeout: TimeAmount?) -> NIODeadline? {
        guard !responseComplete else { return nil }
        var next: NIODeadline?
        if !requestEnded, let requestTimeout {
            let deadline = startTime + requestTimeout
            if now >= deadline {
                config.stats.downstreamRqTimeout.increment()
                endedByConnectionManager(reply: .requestTimeout)
                return nil
            }
            next = deadline
        }
        if let globalDeadline {
            if now >= globalDeadline {
                onGlobalTimeout()
                return nil
            }
            next = min(next ?? globalDeadline, globalDeadline)
        }
        if let idleTimeout {
            let deadline = lastActivity + idleTimeout
            if now >= deadline {
                config.stats.downstreamRqIdleTimeout.increment()
                flags.insert(.streamIdleTimeout)
                endedByConnectionManager(reply: .streamIdleTimeout(requestComplete: requestEnded))
                return nil
            }
            next = min(next ?? deadline, deadline)
        }
        return next
    }

    /// The connection manager ends the stream (a timeout of its own): the upstream request is
    /// abandoned and the cluster records no response; a response already under way is reset.
    private func endedByConnectionManager(reply: LocalReply) {
        filterDelay?.task.cancel()
        filterDelay?.ended?()
        filterDelay = nil
        backOffTimer?.cancel()
        attempt += 1
        endAttempt(discard: true)
        cluster = nil
        if responseStarted {
            log?.details = reply.details
            config.stats.downstreamRqTxReset.increment()
            abortDownstream()
        } else {
            finish(localReply: reply)
        }
    }

    /// `per_try_idle_timeout`: checks the attempt at `deadline`, and again later if data moved since.
    private func armPerTryIdleCheck(_ thisAttempt: Int, at deadline: NIODeadline) {
        perTryIdleTimer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            perTryIdleTimer = nil
            guard thisAttempt == attempt, !responseComplete, let limit = policy?.perTryIdleTimeoutMs else { return }
            let due = max(lastActivity, attemptStartedAt) + .milliseconds(limit)
            if due > loop.now {
                armPerTryIdleCheck(thisAttempt, at: due)
            } else {
                onPerTryIdleTimeout()
            }
        }
    }

    private func onPerTryIdleTimeout() {
        cluster?.stats.upstreamRqPerTryIdleTimeout.increment()
        attemptHost?.stats.rqTimeout.wrappingAdd(1, ordering: .relaxed)
        if let host = attemptHost { reportLocalOrigin(host, failed: true, status: 504) }
        attempt += 1
        endAttempt(discard: true)
        if responseStarted {
            // Part of the response is out: the stream can only be reset, as Envoy does.
            flags.insert(.upstreamRequestTimeout)
            log?.details = LocalReply.perTryIdleTimeout.details
            abortDownstream()
            return
        }
        attemptFailed(.perTryTimeout, reason: "per try idle timeout", flags: .upstreamRequestTimeout,
                      timeoutReply: .perTryIdleTimeout)
    }

    // MARK: upstream response

    func upstreamResponseHead(_ head: HTTPResponseHead) {
        guard let cluster, let host = attemptHost, !responseComplete else { return }
        lastActivity = loop.now
        perTryTimer?.cancel()
        perTryTimer = nil
        reportOutlier(host, status: Int(head.status.code))
        // A forwarded CONNECT succeeds with any 2xx, other upgrades with a 101.
        if let upgradeType, upgradeType == "connect" ? head.status.code / 100 == 2 : head.status == .switchingProtocols {
            host.stats.rqSuccess.wrappingAdd(1, ordering: .relaxed)
            establishTunnel(head)
            return
        }
        let status = Int(head.status.code)
        func countOnHost() {
            if status >= 500 {
                host.stats.rqError.wrappingAdd(1, ordering: .relaxed)
            } else {
                host.stats.rqSuccess.wrappingAdd(1, ordering: .relaxed)
            }
        }
        if let policy, policy.retries(status: status) || retriesGRPCStatus(head, policy: policy)
            || policy.retries(responseHeader: { head.headers.first(name: $0) }) {
            releaseRetrySlot()
            if mayRetry() {
                cluster.stats.retryResponseCodes.record(status: status)
                countOnHost()
                endAttempt(discard: true)
                scheduleRetry(after: head)
                return
            }
        } else if retriesUsed > 0 {
            cluster.stats.upstreamRqRetrySuccess.increment()
        }
        countOnHost()
        recordUpstreamCompletion(status: status)
        responseStarted = true
        if log != nil {
            log!.firstUpstreamByte = loop.now
            log!.details = "via_upstream"
        }
        writeResponseHead(downstreamResponseHead(from: head))
    }

    /// The upstream accepted the upgrade: the 101 goes downstream and both connections become one
    /// byte tunnel. The upstream connection leaves its pool for good; its close is still counted.
    private func establishTunnel(_ head: HTTPResponseHead) {
        guard let connection, let downstream = manager.channel else { return }
        let status = Int(head.status.code)
        recordUpstreamCompletion(status: status)
        responseStarted = true
        var response = downstreamResponseHead(from: head)
        let overHTTP2 = manager.isHTTP2
        let isConnect = upgradeType == "connect"
        if overHTTP2 {
            // RFC 8441: the extended CONNECT's success is a 200, and HTTP/2 has no connection headers.
            response.status = .ok
        } else if !isConnect {
            response.headers.add(name: "connection", value: "upgrade")
            if let upgrade = head.headers.first(name: "upgrade") { response.headers.add(name: "upgrade", value: upgrade) }
        }
        log?.details = "via_upstream"
        // A CONNECT's 2xx over HTTP/1.1 is written by hand (see `connectTunnelEstablished`).
        let rawResponse = !overHTTP2 && isConnect ? Self.encoded(response) : nil
        if rawResponse == nil { writeResponseHead(response, flush: true) }
        connection.handler.delegate = nil
        connection.handler.resumeReading()
        self.connection = nil
        becameTunnel(status: status)
        let upstream = connection.channel
        loop.assumeIsolated().execute {
            do {
                if overHTTP2 {
                    try HTTPUpgradeTunnel.splice(downstreamStream: downstream, upstream: upstream)
                } else {
                    try HTTPUpgradeTunnel.splice(downstream: downstream, upstream: upstream, response: rawResponse)
                }
            } catch {
                downstream.close(promise: nil)
                upstream.close(promise: nil)
            }
        }
    }

    /// The request is done as HTTP (its answer counted and logged); the connection, or the HTTP/2
    /// stream, now carries the tunnel.
    private func becameTunnel(status: Int) {
        endAttempt(discard: false)
        responseComplete = true
        durationTimer?.cancel()
        config.stats.downstreamRqActive.decrement()
        config.stats.recordResponse(status: status)
        emitLog(trailers: nil)
        manager.tunnelEstablished(self)
    }

    /// An HTTP/1.1 response head as bytes, for a CONNECT's 2xx: NIO's encoder does not know the
    /// request was a CONNECT and would frame a body (chunked) that a tunnel must not have.
    static func encoded(_ head: HTTPResponseHead) -> ByteBuffer {
        var bytes = ByteBuffer(string: "HTTP/1.1 \(head.status.code) \(head.status.reasonPhrase)\r\n")
        for (name, value) in head.headers { bytes.writeString("\(name): \(value)\r\n") }
        bytes.writeString("\r\n")
        return bytes
    }

    /// A trailers-only gRPC reply (`grpc-status` in the headers) matching the policy's gRPC conditions.
    private func retriesGRPCStatus(_ head: HTTPResponseHead, policy: RetryPolicy) -> Bool {
        guard isGRPC, policy.retriesGRPC, let code = head.headers.first(name: "grpc-status").flatMap({ Int($0) })
        else { return false }
        return policy.retries(grpcStatus: code)
    }

    func upstreamResponseBody(_ body: ByteBuffer) {
        guard responseStarted, !responseComplete else { return }
        lastActivity = loop.now
        log?.bytesSent += UInt64(body.readableBytes)
        grpcCall?.responseMessages.consume(body)
        // Flushed once per read batch (upstreamReadComplete) or with the end, not per part.
        manager.write(.body(.byteBuffer(body)), flush: false)
        if !manager.isWritable { connection?.handler.pauseReading() }
    }

    func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        guard responseStarted, !responseComplete, cluster != nil else { return }
        let connection = self.connection
        endAttempt(discard: false)
        if let connection, let pool {
            if keepAliveUpstream, requestEnded {
                pool.release(connection)
            } else {
                pool.discard(connection)
            }
        }
        finish(status: Int(lastStatus), trailers: trailers)
    }

    func upstreamReadComplete() {
        if responseStarted, !responseComplete { manager.flush() }
    }

    func upstreamConnectionLost() {
        guard !responseComplete, connection != nil else { return }
        cluster?.stats.upstreamCxDestroyRemote.increment()
        if responseStarted {
            cluster?.stats.upstreamRqRxReset.increment()
            endAttempt(discard: false)
            abortDownstream()
            return
        }
        cluster?.stats.upstreamRqRxReset.increment()
        attemptReset(reason: "connection termination", flags: .upstreamConnectionTermination)
    }

    /// The upstream side ended the attempt before a response head: counted against the host, then
    /// retried or answered as a reset.
    private func attemptReset(reason: String, flags resetFlags: ResponseFlags) {
        attemptHost?.stats.rqError.wrappingAdd(1, ordering: .relaxed)
        if let host = attemptHost { reportLocalOrigin(host, failed: true, status: 503) }
        endAttempt(discard: false)
        attemptFailed(.reset, reason: reason, flags: resetFlags)
    }

    /// The response broke the codec's rules (too many headers): the connection is gone, and the
    /// attempt fails as a reset would, with Envoy's `protocol error` reason and flag UPE.
    func upstreamProtocolError() {
        guard !responseComplete, connection != nil else { return }
        cluster?.stats.upstreamCxProtocolError.increment()
        attemptReset(reason: "protocol error", flags: .upstreamProtocolError)
    }

    func upstreamWritabilityChanged(_ writable: Bool) {
        if writable { manager.resumeReading() } else { manager.pauseReading() }
    }

    func downstreamWritabilityChanged(_ writable: Bool) {
        if writable { connection?.handler.resumeReading() }
    }

    /// The client went away: abandon the upstream request.
    func downstreamReset() {
        if let delay = filterDelay {
            delay.task.cancel()
            delay.ended?()
            filterDelay = nil
        }
        guard !responseComplete else { return }
        if attemptHost != nil { cluster?.stats.upstreamRqCancelled.increment() }
        config.stats.downstreamRqRxReset.increment()
        flags.insert(.downstreamConnectionTermination)
        if log != nil, log!.details == nil { log!.details = "downstream_remote_disconnect" }
        emitLog(trailers: nil)
        responseComplete = true
        durationTimer?.cancel()
        backOffTimer?.cancel()
        attempt += 1
        endAttempt(discard: true)
        config.stats.downstreamRqActive.decrement()
    }

    // MARK: response

    private var lastStatus: UInt = 0
    private var keepAliveUpstream = true

    private func recordUpstreamCompletion(status: Int) {
        guard let cluster else { return }
        cluster.stats.responseCodes.record(status: status)
        let elapsed = Double((loop.now - startTime).nanoseconds) / 1_000_000
        cluster.stats.upstreamRqTime.record(milliseconds: elapsed)
        if isExternal {
            cluster.stats.externalResponseCodes.record(status: status)
            cluster.stats.externalUpstreamRqTime.record(milliseconds: elapsed)
        }
    }

    private func downstreamResponseHead(from upstream: HTTPResponseHead) -> HTTPResponseHead {
        lastStatus = upstream.status.code
        keepAliveUpstream = connection?.handler.responseKeepsConnection
            ?? UpstreamConnectionHandler.keepsConnection(after: upstream)
        // A list wrapped once, as for the upstream request.
        var headers: [(String, String)] = []
        headers.reserveCapacity(upstream.headers.count + 4)
        var sawServer = false
        var sawDate = false
        // Names arrive in lower case, as for requests (`UpstreamConnectionHandler.channelRead` sees to
        // heads from NIO's codecs).
        for (lower, value) in upstream.headers {
            switch ProxiedResponseHeader(lowercased: lower) {
            case .hopByHop:
                continue
            case .server:
                sawServer = true
                headers.append(("server", config.serverName))
                continue
            case .date:
                sawDate = true
            case .other:
                break
            }
            headers.append((lower, value))
        }
        // Envoy measures from the first upstream attempt, so back-off between retries counts too.
        let serviceMs = (loop.now - startTime).nanoseconds / 1_000_000
        headers.append(("x-envoy-upstream-service-time", String(serviceMs)))
        for cookie in setCookies { headers.append(("set-cookie", cookie)) }
        if !sawDate { headers.append(("date", manager.dates.current())) }
        if !sawServer { headers.append(("server", config.serverName)) }
        if !keepAlive { headers.append(("connection", "close")) }
        headers += filterResponseHeaders
        if !headerEdits.responseAdd.isEmpty || !headerEdits.responseRemove.isEmpty {
            let status = Int(upstream.status.code)
            HeaderEdits.apply(remove: headerEdits.responseRemove, add: headerEdits.responseAdd, to: &headers) { [self] in
                $0.render(formatContext(status: status), missing: "")
            }
        }
        return HTTPResponseHead(version: downstreamHead.version, status: upstream.status, headers: HTTPHeaders(headers))
    }

    private func finish(localReply reply: LocalReply) {
        flags.insert(reply.flags)
        if cluster != nil {
            // Router-made replies count as the cluster's responses, as in Envoy.
            recordUpstreamCompletion(status: Int(reply.status.code))
        }
        if responseStarted {
            abortDownstream()
            return
        }
        // Unread request body would have to be drained; closing is simpler and what Envoy does for
        // large bodies. A request without a body has nothing left to read (its end is on its way).
        if !requestEnded, Self.mayHaveBody(downstreamHead.headers) { keepAlive = false }
        if isGRPC {
            finish(grpcLocalReply: reply)
            return
        }
        var headers = HTTPHeaders()
        for (name, value) in reply.headers { headers.add(name: name, value: value) }
        if reply.overloaded { headers.add(name: "x-envoy-overloaded", value: "true") }
        headers.add(name: "content-length", value: String(reply.body.utf8.count))
        if !reply.body.isEmpty { headers.add(name: "content-type", value: reply.contentType) }
        if let redirectLocation { headers.add(name: "location", value: redirectLocation) }
        headers.add(name: "date", value: manager.dates.current())
        headers.add(name: "server", value: config.serverName)
        if !keepAlive { headers.add(name: "connection", value: "close") }
        if !headerEdits.responseAdd.isEmpty || !headerEdits.responseRemove.isEmpty {
            let status = Int(reply.status.code)
            headers = Self.edited(headers, remove: headerEdits.responseRemove, add: headerEdits.responseAdd) { [self] in
                $0.render(formatContext(status: status), missing: "")
            }
        }
        responseStarted = true
        lastStatus = reply.status.code
        log?.details = reply.details
        writeResponseHead(HTTPResponseHead(version: downstreamHead.version, status: reply.status, headers: headers))
        if !reply.body.isEmpty {
            log?.bytesSent += UInt64(reply.body.utf8.count)
            manager.write(.body(.byteBuffer(ByteBuffer(string: reply.body))), flush: false)
        }
        finish(status: Int(reply.status.code), trailers: nil)
    }

    /// A gRPC client gets a local reply as gRPC: HTTP 200 with `grpc-status` (mapped from the HTTP
    /// status) and the body as `grpc-message`, headers only, as Envoy sends it.
    private func finish(grpcLocalReply reply: LocalReply) {
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/grpc")
        headers.add(name: "grpc-status", value: String(reply.grpcStatus ?? GRPC.status(forHTTP: Int(reply.status.code))))
        if !reply.body.isEmpty { headers.add(name: "grpc-message", value: GRPC.percentEncoded(reply.body)) }
        headers.add(name: "date", value: manager.dates.current())
        headers.add(name: "server", value: config.serverName)
        if !manager.isHTTP2 { headers.add(name: "content-length", value: "0") }
        if !keepAlive { headers.add(name: "connection", value: "close") }
        if !headerEdits.responseAdd.isEmpty || !headerEdits.responseRemove.isEmpty {
            headers = Self.edited(headers, remove: headerEdits.responseRemove, add: headerEdits.responseAdd) { [self] in
                $0.render(formatContext(status: 200), missing: "")
            }
        }
        responseStarted = true
        lastStatus = 200
        log?.details = reply.details
        writeResponseHead(HTTPResponseHead(version: downstreamHead.version, status: .ok, headers: headers))
        finish(status: 200, trailers: nil)
    }

    private func finish(status: Int, trailers: HTTPHeaders?) {
        responseComplete = true
        durationTimer?.cancel()
        backOffTimer?.cancel()
        endAttempt(discard: true)
        let stats = config.stats
        stats.downstreamRqActive.decrement()
        stats.recordResponse(status: status)
        stats.downstreamRqTime.record(milliseconds: Double((loop.now - startTime).nanoseconds) / 1_000_000)
        manager.writeEnd(trailers, close: !keepAlive)
        if var call = grpcCall, let filter = config.grpcStats, let cluster {
            if let status = trailers?.first(name: "grpc-status").flatMap({ Int($0) }) { call.status = status }
            filter.record(call, cluster: cluster.name)
            grpcCall = nil
        }
        emitLog(trailers: trailers)
        if upgradeAsked, keepAlive, !manager.isHTTP2 { manager.resumeAfterUpgrade() }
        if requestEnded { manager.streamFinished(self) }
    }

    /// The response already started and cannot be completed: reset the downstream connection.
    private func abortDownstream() {
        emitLog(trailers: nil)
        // Envoy counts a response's class when its headers go out, so a reset one still counts.
        if lastStatus > 0 { config.stats.recordResponse(status: Int(lastStatus)) }
        config.stats.rqResetAfterDownstreamResponseStarted.increment()
        responseComplete = true
        durationTimer?.cancel()
        backOffTimer?.cancel()
        config.stats.downstreamRqActive.decrement()
        manager.closeConnection()
    }
}

extension ActiveStream {
    /// Fire-and-forget copies of the finished request to the mirror clusters, as Envoy shadows: the
    /// host gets `-shadow`, the request is marked internal; answers and failures are dropped.
    private func sendMirrors() {
        let targets = mirrors
        mirrors = []
        guard cluster != nil else { return }
        guard bodyRetainable else {
            cluster?.stats.retryOrShadowAbandoned.increment()
            return
        }
        for (mirror, target) in targets {
            var head = upstreamHead
            if mirror.appendShadowSuffix {
                // Host keeps its place (replaceOrAdd would move it last).
                head.headers = HTTPHeaders(upstreamHead.headers.map { name, value in
                    (name, name == "host" ? RouteAction.MirrorPolicy.shadowHost(value) : value)
                })
            }
            head.headers.add(name: "x-envoy-internal", value: "true")
            if let local = manager.channel?.localAddress?.ipAddress {
                head.headers.add(name: "x-forwarded-for", value: local)
            }
            FireAndForgetRequest.send(head, body: retryBody, to: target, on: loop)
        }
    }

    /// Tells outlier detection how an attempt on `host` ended (a connect failure or reset as 503).
    private func reportOutlier(_ host: Host, status: Int) {
        guard let cluster, let detector = cluster.outlierDetector else { return }
        detector.report(host, status: status, hostCount: cluster.hosts.count, random: manager.requestIDs.nextRandom())
    }

    /// A connect, reset or timeout on `host` (or, `failed` false, a connection handed to this attempt).
    private func reportLocalOrigin(_ host: Host, failed: Bool, status: Int) {
        guard let cluster, let detector = cluster.outlierDetector else { return }
        detector.reportLocalOrigin(host, failed: failed, status: status, hostCount: cluster.hosts.count,
                                   random: manager.requestIDs.nextRandom())
    }

    /// Writes the response head, keeping what the access logs print of it.
    private func writeResponseHead(_ head: HTTPResponseHead, flush: Bool = false) {
        if grpcCall != nil, let status = head.headers.first(name: "grpc-status").flatMap({ Int($0) }) {
            grpcCall?.status = status
        }
        if log != nil {
            log!.responseHeaders = head.headers
            log!.responseCode = Int(head.status.code)
        }
        manager.write(.head(head), flush: flush)
    }

    /// Hands the finished stream to every access logger, once.
    private func emitLog(trailers: HTTPHeaders?) {
        guard let log else { return }
        self.log = nil
        var entry = AccessLogEntry(startTime: log.startTime)
        entry.requestHeaders = downstreamHead.headers
        if let requestID = log.requestID, entry.requestHeaders.first(name: "x-request-id") != requestID {
            entry.requestHeaders.replaceOrAdd(name: "x-request-id", value: requestID)
        }
        entry.method = downstreamHead.method.rawValue
        entry.path = downstreamHead.uri
        entry.authority = downstreamHead.headers.first(name: "host") ?? ""
        entry.protocolName = manager.isHTTP2 ? "HTTP/2" : (downstreamHead.version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1")
        entry.responseHeaders = log.responseHeaders
        entry.responseTrailers = trailers
        entry.responseCode = log.responseCode
        entry.responseCodeDetails = log.details
        entry.responseFlags = flags
        entry.bytesReceived = log.bytesReceived
        entry.bytesSent = log.bytesSent
        let now = loop.now
        func milliseconds(_ moment: NIODeadline?) -> Int64? {
            moment.map { ($0 - startTime).nanoseconds / 1_000_000 }
        }
        entry.durationMs = milliseconds(now)
        entry.requestDurationMs = milliseconds(log.requestEnd)
        entry.responseDurationMs = milliseconds(log.firstUpstreamByte)
        entry.upstreamHost = log.upstreamHost
        entry.upstreamCluster = cluster?.name
        entry.upstreamLocalAddress = log.upstreamLocalAddress
        entry.upstreamTransportFailureReason = transportFailureReason.map(TransportFailure.logged)
        entry.downstreamRemoteAddress = manager.channel?.remoteAddress?.logDescription
        entry.downstreamLocalAddress = manager.channel?.localAddress?.logDescription
        entry.routeName = route.map { $0.name.isEmpty ? nil : $0.name } ?? nil
        entry.connectionID = manager.connectionID
        entry.downstreamTLS = manager.tls
        if manager.tls != nil { entry.scheme = "https" }
        for logger in config.accessLoggers { logger.log(entry) }
        if let span, let tracer = config.tracer {
            tracer.finish(span, entry: entry, durationMicros: (now - startTime).nanoseconds / 1000,
                          localIP: manager.channel?.localAddress?.ipAddress)
        }
    }

    /// Headers with a route's removals and additions applied (only built when a route has edits);
    /// `render` gives values with `%...%` operators theirs.
    static func edited(_ headers: HTTPHeaders, remove: [String], add: [HeaderEdits.Addition],
                       render: (AccessLogFormat) -> String = { _ in "" }) -> HTTPHeaders {
        var list = headers.map { ($0.name, $0.value) }
        HeaderEdits.apply(remove: remove, add: add, to: &list, render: render)
        return HTTPHeaders(list)
    }

    /// What `%...%` operators in header values see: the request so far, and `status` once there is one.
    private func formatContext(status: Int) -> AccessLogEntry {
        var entry = AccessLogEntry(startTime: log?.startTime ?? wallClockNow())
        entry.requestHeaders = downstreamHead.headers
        entry.method = downstreamHead.method.rawValue
        entry.path = downstreamHead.uri
        entry.authority = downstreamHead.headers.first(name: "host") ?? ""
        entry.protocolName = manager.isHTTP2 ? "HTTP/2" : (downstreamHead.version == .http1_0 ? "HTTP/1.0" : "HTTP/1.1")
        entry.responseCode = status
        entry.responseFlags = flags
        entry.upstreamCluster = cluster?.name
        entry.upstreamHost = attemptHost?.addressDescription ?? log?.upstreamHost
        entry.downstreamRemoteAddress = manager.channel?.remoteAddress?.logDescription
        entry.downstreamLocalAddress = manager.channel?.localAddress?.logDescription
        entry.routeName = route.map { $0.name.isEmpty ? nil : $0.name } ?? nil
        entry.connectionID = manager.connectionID
        entry.downstreamTLS = manager.tls
        if manager.tls != nil { entry.scheme = "https" }
        return entry
    }
}
