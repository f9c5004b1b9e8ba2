import NIOCore
import NIOHTTP1
import NIOHTTP2
import ProxyCore
import SwiftProtobuf
import Synchronization
import XDSAPI
import XDSResource

/// A host's active health as its cluster's health checker sees it. New hosts of a cluster with
/// health checks are unhealthy until their first check passes (Envoy's pending active HC).
public final class HostHealth: Sendable {
    /// 0 healthy, 1 failed active health check.
    private let state = Atomic<UInt8>(0)

    public init() {}

    public var failedActiveHealthCheck: Bool { state.load(ordering: .relaxed) == 1 }
    func set(failed: Bool) { state.store(failed ? 1 : 0, ordering: .relaxed) }
}

/// One `health_checks` entry, read: how often, how long, how many in a row, and what to ask.
struct HealthCheckConfig: Sendable {
    enum Probe: Sendable {
        /// GET `path` with Host `host` and `headers` (`request_headers_to_add`, less `request_headers_to_remove`);
        /// healthy when the status is in `expected` ([start, end) ranges).
        case http(path: String, host: String?, expected: [Range<Int>], headers: [(String, String)] = [],
                  removed: Set<String> = [], http2: Bool = false)
        /// A TCP connect; `send` written, and every `receive` block found in what comes back, in order.
        case tcp(send: [UInt8] = [], receive: [[UInt8]] = [])
        /// `grpc.health.v1.Health/Check` over HTTP/2 for `service`; healthy when it answers SERVING.
        case grpc(service: String, authority: String?)
    }

    var interval: TimeAmount
    /// Used until the cluster has carried traffic (Envoy: 60 s by default).
    var noTrafficInterval: TimeAmount
    /// For a failing host (`unhealthy_interval`), and right after a host changed state
    /// (`unhealthy_edge_interval`, `healthy_edge_interval`); each defaults as Envoy's do.
    var unhealthyInterval: TimeAmount
    var unhealthyEdgeInterval: TimeAmount
    var healthyEdgeInterval: TimeAmount
    /// `interval_jitter` and `interval_jitter_percent`: a random extra wait below these, added to each interval.
    var intervalJitter: TimeAmount = .zero
    var intervalJitterPercent: Int64 = 0
    /// `no_traffic_healthy_interval`: for a healthy host before the cluster carried traffic.
    var noTrafficHealthyInterval: TimeAmount?
    var timeout: TimeAmount
    var unhealthyThreshold: Int
    var healthyThreshold: Int
    var probe: Probe

    init(_ proto: Envoy_Config_Core_V3_HealthCheck, path: String) throws {
        guard proto.hasTimeout, proto.timeout.milliseconds > 0 else {
            throw FieldError(path + ".timeout", "a timeout above 0 is required")
        }
        guard proto.hasInterval, proto.interval.milliseconds > 0 else {
            throw FieldError(path + ".interval", "an interval above 0 is required")
        }
        guard proto.hasUnhealthyThreshold, proto.hasHealthyThreshold else {
            throw FieldError(path, "unhealthy_threshold and healthy_threshold are required")
        }
        timeout = .milliseconds(proto.timeout.milliseconds)
        interval = .milliseconds(proto.interval.milliseconds)
        noTrafficInterval = proto.hasNoTrafficInterval && proto.noTrafficInterval.milliseconds > 0
            ? .milliseconds(proto.noTrafficInterval.milliseconds) : .seconds(60)
        func duration(_ value: Google_Protobuf_Duration, present: Bool) -> TimeAmount? {
            present && value.milliseconds > 0 ? .milliseconds(value.milliseconds) : nil
        }
        unhealthyInterval = duration(proto.unhealthyInterval, present: proto.hasUnhealthyInterval) ?? interval
        unhealthyEdgeInterval = duration(proto.unhealthyEdgeInterval, present: proto.hasUnhealthyEdgeInterval)
            ?? unhealthyInterval
        healthyEdgeInterval = duration(proto.healthyEdgeInterval, present: proto.hasHealthyEdgeInterval) ?? interval
        intervalJitter = duration(proto.intervalJitter, present: proto.hasIntervalJitter) ?? .zero
        intervalJitterPercent = Int64(proto.intervalJitterPercent)
        noTrafficHealthyInterval = duration(proto.noTrafficHealthyInterval, present: proto.hasNoTrafficHealthyInterval)
        unhealthyThreshold = max(1, Int(proto.unhealthyThreshold.value))
        healthyThreshold = max(1, Int(proto.healthyThreshold.value))
        if proto.hasAltPort { throw FieldError(path + ".alt_port", "not supported yet") }
        switch proto.healthChecker {
        case .httpHealthCheck(let http)?:
            guard !http.path.isEmpty else { throw FieldError(path + ".http_health_check.path", "a path is required") }
            guard http.codecClientType == .http1 || http.codecClientType == .http2 else {
                throw FieldError(path + ".http_health_check.codec_client_type", "only HTTP1 and HTTP2 health checks are supported")
            }
            if http.hasSend || !http.receive.isEmpty || http.hasServiceNameMatcher {
                throw FieldError(path + ".http_health_check", "send, receive and service_name_matcher are not supported yet")
            }
            var headers: [(String, String)] = []
            for (index, option) in http.requestHeadersToAdd.enumerated() {
                let name = option.header.key.lowercased()
                guard !name.isEmpty, !name.hasPrefix(":"), name != "host" else {
                    throw FieldError("\(path).http_health_check.request_headers_to_add[\(index)].header.key",
                                     "a header name other than host and pseudo-headers is required")
                }
                guard !option.header.value.contains("%") else {
                    throw FieldError("\(path).http_health_check.request_headers_to_add[\(index)].header.value",
                                     "%...% formatters are not supported in health check headers yet")
                }
                headers.append((name, option.header.value))
            }
            let expected = http.expectedStatuses.isEmpty
                ? [200..<201] : http.expectedStatuses.map { Int($0.start)..<Int($0.end) }
            probe = .http(path: http.path, host: http.host.isEmpty ? nil : http.host, expected: expected,
                          headers: headers, removed: Set(http.requestHeadersToRemove.map { $0.lowercased() }),
                          http2: http.codecClientType == .http2)
        case .tcpHealthCheck(let tcp)?:
            let send = tcp.hasSend ? try Self.bytes(of: tcp.send, path: path + ".tcp_health_check.send") : []
            let receive = try tcp.receive.enumerated().map { index, payload in
                try Self.bytes(of: payload, path: "\(path).tcp_health_check.receive[\(index)]")
            }
            probe = .tcp(send: send, receive: receive)
        case .grpcHealthCheck(let grpc)?:
            if !grpc.initialMetadata.isEmpty {
                throw FieldError(path + ".grpc_health_check.initial_metadata", "not supported yet")
            }
            probe = .grpc(service: grpc.serviceName, authority: grpc.authority.isEmpty ? nil : grpc.authority)
        default:
            throw FieldError(path, "only http_health_check, tcp_health_check and grpc_health_check are supported")
        }
    }
}

extension HealthCheckConfig {
    /// A payload's bytes: `text` is hex, as Envoy reads it.
    static func bytes(of payload: Envoy_Config_Core_V3_HealthCheck.Payload, path: String) throws -> [UInt8] {
        switch payload.payload {
        case .binary(let data)?: return Array(data)
        case .text(let hex)?:
            let digits = Array(hex.utf8)
            guard digits.count % 2 == 0, !digits.isEmpty else { throw FieldError(path + ".text", "an even number of hex digits is required") }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(digits.count / 2)
            for index in stride(from: 0, to: digits.count, by: 2) {
                guard let byte = UInt8(String(decoding: digits[index...index + 1], as: UTF8.self), radix: 16) else {
                    throw FieldError(path + ".text", "'\(hex)' is not hex")
                }
                bytes.append(byte)
            }
            return bytes
        case nil: throw FieldError(path, "text or binary is required")
        }
    }

    /// The wait before a host's next check, as Envoy picks it: the no-traffic interval until the
    /// cluster carried traffic, else by the host's state and whether this check changed it, plus jitter.
    func nextInterval(failing: Bool, changed: Bool, hadTraffic: Bool, random: UInt64) -> TimeAmount {
        let base: TimeAmount
        if !hadTraffic {
            base = failing ? noTrafficInterval : noTrafficHealthyInterval ?? noTrafficInterval
        } else if failing {
            base = changed ? unhealthyEdgeInterval : unhealthyInterval
        } else {
            base = changed ? healthyEdgeInterval : interval
        }
        var jitter: Int64 = 0
        let percentRange = base.nanoseconds / 100 * intervalJitterPercent
        if percentRange > 0 { jitter += Int64(random % UInt64(percentRange)) }
        if intervalJitter.nanoseconds > 0 { jitter += Int64((random >> 17) % UInt64(intervalJitter.nanoseconds)) }
        return base + .nanoseconds(jitter)
    }
}

/// `cluster.<name>.health_check.*`.
public final class HealthCheckStats: Sendable {
    public let attempt, success, failure, networkFailure: Counter
    public let healthy: Gauge

    init(clusterName: String, store: StatsStore) {
        let tags = [StatTags.Tag("envoy_cluster_name", clusterName)]
        func counter(_ name: String) -> Counter {
            store.counter("cluster.\(clusterName).health_check.\(name)",
                          StatTags(extractedName: "cluster.health_check.\(name)", tags: tags))
        }
        attempt = counter("attempt")
        success = counter("success")
        failure = counter("failure")
        networkFailure = counter("network_failure")
        _ = counter("passive_failure")
        _ = counter("verify_cluster")
        healthy = store.gauge("cluster.\(clusterName).health_check.healthy",
                              StatTags(extractedName: "cluster.health_check.healthy", tags: tags))
        _ = store.gauge("cluster.\(clusterName).health_check.degraded",
                        StatTags(extractedName: "cluster.health_check.degraded", tags: tags))
    }
}

/// Checks every host of a cluster each `interval` (`no_traffic_interval` until it has carried
/// traffic) from one event loop: after `unhealthy_threshold`
/// failures in a row a host leaves load balancing (`/failed_active_hc`), after `healthy_threshold`
/// successes it returns; a new host joins at its first success. Loop-confined (@unchecked Sendable:
/// other threads only start and stop it through the loop).
public final class HealthChecker: @unchecked Sendable {
    private let config: HealthCheckConfig
    private let loop: any EventLoop
    private let connector: any UpstreamConnector
    private let clusterName: String
    let stats: HealthCheckStats
    private weak var cluster: Cluster?
    private var streaks: [ObjectIdentifier: (successes: Int, failures: Int, checked: Bool)] = [:]
    /// When each host is due for its next check (new hosts: at once; a check in flight: never).
    private var due: [ObjectIdentifier: NIODeadline] = [:]
    private var timer: Scheduled<Void>?
    private var timerDeadline = NIODeadline.distantFuture
    private var stopped = false

    init(config: HealthCheckConfig, loop: any EventLoop, connector: any UpstreamConnector, clusterName: String,
         stats: HealthCheckStats) {
        self.config = config
        self.loop = loop
        self.connector = connector
        self.clusterName = clusterName
        self.stats = stats
    }

    func start(cluster: Cluster) {
        loop.execute { [self] in
            self.cluster = cluster
            round()
        }
    }

    /// Hosts new to the cluster wait for their first passing check.
    func adopt(_ hosts: [Host]) {
        for host in hosts { host.health.set(failed: true) }
    }

    public func stop() {
        loop.execute { [self] in
            stopped = true
            timer?.cancel()
            timer = nil
        }
    }

    /// Checks the hosts that are due, and sleeps until the next one is (at most an interval, so hosts
    /// that join the cluster are picked up).
    private func round() {
        timer = nil
        timerDeadline = .distantFuture
        guard !stopped, let cluster else { return }
        let now = loop.now
        let hosts = cluster.hosts
        let live = Set(hosts.map(ObjectIdentifier.init))
        streaks = streaks.filter { live.contains($0.key) }
        due = due.filter { live.contains($0.key) }
        for host in hosts where due[ObjectIdentifier(host)] ?? now <= now {
            due[ObjectIdentifier(host)] = .distantFuture
            check(host)
        }
        let refresh = now + (cluster.stats.upstreamRqTotal.value > 0 ? config.interval : config.noTrafficInterval)
        schedule(at: min(due.values.min() ?? refresh, refresh))
    }

    private func schedule(at deadline: NIODeadline) {
        guard deadline < timerDeadline else { return }
        timer?.cancel()
        timerDeadline = deadline
        timer = loop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in round() }
    }

    private func check(_ host: Host) {
        stats.attempt.increment()
        let probe = HealthProbe(loop: loop, timeout: config.timeout) { [self] outcome in finished(host, outcome) }
        switch config.probe {
        case .tcp(let send, let receive):
            // The connection is made on this loop, so the probe may be handed to its initializer.
            let boundProbe = NIOLoopBound(probe, eventLoop: loop)
            connector.connect(to: host, on: loop, timeout: config.timeout) { channel in
                guard !receive.isEmpty else { return }
                let probe = boundProbe.value
                try channel.pipeline.syncOperations.addHandler(TCPPayloadMatcher(expected: receive) { matched in
                    probe.complete(matched ? .healthy : .networkFailure)
                })
            }.assumeIsolated().whenComplete { result in
                switch result {
                case .success(let channel):
                    probe.channel = channel
                    if !send.isEmpty { channel.writeAndFlush(ByteBuffer(bytes: send), promise: nil) }
                    if receive.isEmpty { probe.complete(.healthy) }
                case .failure:
                    probe.complete(.networkFailure)
                }
            }
        case .http(let path, let hostHeader, let expected, let extraHeaders, let removed, let http2):
            probe.expected = expected
            var headers = HTTPHeaders()
            headers.add(name: "host", value: hostHeader ?? clusterName)
            if !removed.contains("user-agent") { headers.add(name: "user-agent", value: "Envoy/HC") }
            for (name, value) in extraHeaders where !removed.contains(name) { headers.add(name: name, value: value) }
            let request = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
            if http2 {
                checkOverHTTP2(host, request: request, body: nil, probe: probe)
                return
            }
            let handler = UpstreamConnectionHandler()
            handler.delegate = probe
            connector.connect(to: host, on: loop, timeout: config.timeout, handler: handler).assumeIsolated().whenComplete { result in
                switch result {
                case .success(let channel):
                    probe.channel = channel
                    var closing = request
                    closing.headers.add(name: "connection", value: "close")
                    handler.write(.head(closing))
                    handler.write(.end(nil))
                    handler.flush()
                case .failure:
                    probe.complete(.networkFailure)
                }
            }
        case .grpc(let service, let authority):
            probe.grpc = true
            var check = Grpc_Health_V1_HealthCheckRequest()
            check.service = service
            let message: [UInt8] = (try? check.serializedBytes()) ?? []
            var body = ByteBuffer()
            body.writeInteger(UInt8(0))
            body.writeInteger(UInt32(message.count))
            body.writeBytes(message)
            let headers = HTTPHeaders([("host", authority ?? clusterName), ("content-type", "application/grpc"),
                                       ("te", "trailers"), ("user-agent", "Envoy/HC")])
            checkOverHTTP2(host, request: HTTPRequestHead(version: .http1_1, method: .POST, uri: "/grpc.health.v1.Health/Check",
                                                          headers: headers), body: body, probe: probe)
        }
    }

    /// A check over HTTP/2 (gRPC's, or an HTTP check with `codec_client_type: HTTP2`): a connection
    /// with NIO's HTTP/2 client and one stream carrying `request`; the probe judges the answer.
    private func checkOverHTTP2(_ host: Host, request: HTTPRequestHead, body: ByteBuffer?, probe: HealthProbe) {
        connector.connect(to: host, on: loop, timeout: config.timeout) { channel in
            // The server opens no streams towards a health checker.
            _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()) { stream in stream.close() }
        }.assumeIsolated().whenComplete { [loop] result in
            guard case .success(let channel) = result,
                  let multiplexer = try? channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer()
            else {
                if case .success(let channel) = result { channel.close(promise: nil) }
                probe.complete(.networkFailure)
                return
            }
            probe.channel = channel
            let handler = UpstreamConnectionHandler()
            handler.delegate = probe
            let stream = loop.makePromise(of: (any Channel).self)
            multiplexer.createStreamChannel(promise: stream) { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(HTTP2FramePayloadToHTTP1ClientCodec(httpProtocol: .http))
                    try stream.pipeline.syncOperations.addHandler(handler)
                }
            }
            stream.futureResult.assumeIsolated().whenComplete { result in
                guard case .success = result else {
                    probe.complete(.networkFailure)
                    return
                }
                handler.write(.head(request))
                if let body { handler.write(.body(.byteBuffer(body))) }
                handler.write(.end(nil))
                handler.flush()
            }
        }
    }

    private func finished(_ host: Host, _ outcome: HealthProbe.Outcome) {
        guard !stopped else { return }
        var streak = streaks[ObjectIdentifier(host)] ?? (0, 0, false)
        let wasFailed = host.health.failedActiveHealthCheck
        switch outcome {
        case .healthy:
            stats.success.increment()
            streak.successes += 1
            streak.failures = 0
            // A new host joins at its first success; a failed one after healthy_threshold in a row.
            if wasFailed, !streak.checked || streak.successes >= config.healthyThreshold { host.health.set(failed: false) }
        case .unhealthy, .networkFailure:
            stats.failure.increment()
            if outcome == .networkFailure { stats.networkFailure.increment() }
            streak.failures += 1
            streak.successes = 0
            // As in Envoy: an unexpected HTTP status fails the host at once; timeouts and network
            // failures need unhealthy_threshold in a row.
            if !wasFailed, outcome == .unhealthy || streak.failures >= config.unhealthyThreshold {
                host.health.set(failed: true)
            }
        }
        streak.checked = true
        streaks[ObjectIdentifier(host)] = streak
        let failing = host.health.failedActiveHealthCheck
        let next = loop.now + config.nextInterval(failing: failing, changed: failing != wasFailed,
                                                  hadTraffic: (cluster?.stats.upstreamRqTotal.value ?? 0) > 0,
                                                  random: UInt64.random(in: 0 ... .max))
        due[ObjectIdentifier(host)] = next
        schedule(at: next)
        if let cluster {
            let healthy = cluster.hosts.filter { !$0.health.failedActiveHealthCheck }.count
            stats.healthy.set(Int64(healthy))
            cluster.stats.membershipHealthy.set(Int64(healthy))
        }
    }
}

/// One health check in flight: its response status against the expected ranges, bounded by the
/// check's timeout; completes once.
final class HealthProbe: UpstreamResponseDelegate {
    enum Outcome: Equatable { case healthy, unhealthy, networkFailure }

    var expected: [Range<Int>] = []
    /// A gRPC check: the answer is judged at its end, from the message and `grpc-status`.
    var grpc = false
    private var grpcBody = ByteBuffer()
    private var grpcHeadOK = false
    private var grpcStatusInHeaders: String?
    var channel: (any Channel)?
    private var onComplete: ((Outcome) -> Void)?
    private var timer: Scheduled<Void>?
    /// The connection handler holds its delegate weakly; the probe keeps itself until it completes.
    private var retained: HealthProbe?

    init(loop: any EventLoop, timeout: TimeAmount, onComplete: @escaping (Outcome) -> Void) {
        self.onComplete = onComplete
        retained = self
        timer = loop.assumeIsolated().scheduleTask(in: timeout) { [self] in complete(.networkFailure) }
    }

    func complete(_ outcome: Outcome) {
        guard let onComplete else { return }
        self.onComplete = nil
        timer?.cancel()
        channel?.close(promise: nil)
        channel = nil
        retained = nil
        onComplete(outcome)
    }

    func upstreamResponseHead(_ head: HTTPResponseHead) {
        let status = Int(head.status.code)
        guard grpc else {
            complete(expected.contains { $0.contains(status) } ? .healthy : .unhealthy)
            return
        }
        grpcHeadOK = status == 200
        grpcStatusInHeaders = head.headers.first(name: "grpc-status")
    }

    func upstreamResponseBody(_ body: ByteBuffer) {
        guard grpc, grpcBody.readableBytes < 65_536 else { return }
        var body = body
        grpcBody.writeBuffer(&body)
    }

    /// Healthy: HTTP 200, `grpc-status: 0` and a HealthCheckResponse saying SERVING.
    func upstreamResponseEnd(_ trailers: HTTPHeaders?) {
        guard grpc else { return }
        let grpcStatus = trailers?.first(name: "grpc-status") ?? grpcStatusInHeaders
        guard grpcHeadOK, grpcStatus == "0", grpcBody.readableBytes >= 5,
              let length = grpcBody.getInteger(at: grpcBody.readerIndex + 1, as: UInt32.self),
              let bytes = grpcBody.getBytes(at: grpcBody.readerIndex + 5, length: Int(length)),
              let response = try? Grpc_Health_V1_HealthCheckResponse(serializedBytes: bytes)
        else {
            complete(.unhealthy)
            return
        }
        complete(response.status == .serving ? .healthy : .unhealthy)
    }
    func upstreamReadComplete() {}
    func upstreamConnectionLost() { complete(.networkFailure) }
    func upstreamProtocolError() { complete(.networkFailure) }
    func upstreamWritabilityChanged(_ writable: Bool) {}
}
