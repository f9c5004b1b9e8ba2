import NIOCore
import NIOHTTP1
import ProxyCore
import ProxyRouting
import SwiftProtobuf
import XDSAPI
import XDSResource

typealias FaultProto = Envoy_Extensions_Filters_Http_Fault_V3_HTTPFault

/// `envoy.filters.http.fault`: delays and aborts injected into a share of the requests, from the
/// filter's config or a route's `typed_per_filter_config` (which replaces it for that route), as
/// Istio's VirtualService fault injection configures it. A delay comes first, then an abort.
struct FaultFilter: HTTPFilter, HTTPFilterFactory {
    static let configType = FaultProto.protoMessageName

    /// One compiled HTTPFault.
    struct Policy: Sendable {
        enum Delay: Sendable {
            case fixed(TimeAmount)
            /// `x-envoy-fault-delay-request`, in milliseconds.
            case header
        }

        enum Abort: Sendable {
            case http(Int)
            case grpc(Int)
            /// `x-envoy-fault-abort-request` (HTTP status) or `x-envoy-fault-abort-grpc-request`.
            case header
        }

        var delay: (Delay, numerator: UInt64, denominator: UInt64)?
        var abort: (Abort, numerator: UInt64, denominator: UInt64)?
        var headers: [HeaderMatcher] = []
        var upstreamCluster: String?
        var downstreamNodes: Set<String> = []
        var maxActiveFaults: Int64?
    }

    /// `http.<prefix>.fault.*`.
    final class Stats: Sendable {
        let delaysInjected, abortsInjected, faultsOverflow, responseRateLimitInjected: Counter
        let activeFaults: Gauge

        init(statPrefix: String, store: StatsStore) {
            let scope = StatScope(store: store, prefix: "http.\(statPrefix).fault.", extractedPrefix: "http.fault.",
                                  tags: [StatTags.Tag("envoy_http_conn_manager_prefix", statPrefix)])
            delaysInjected = scope.counter("delays_injected")
            abortsInjected = scope.counter("aborts_injected")
            faultsOverflow = scope.counter("faults_overflow")
            responseRateLimitInjected = scope.counter("response_rl_injected")
            activeFaults = scope.gauge("active_faults")
        }
    }

    let name: String
    let policy: Policy
    let stats: Stats

    static func make(_ config: Google_Protobuf_Any, name: String, context: HTTPFilterContext, path: String) throws
        -> any HTTPFilter
    {
        FaultFilter(name: name, policy: try Policy(try FaultProto(unpackingAny: config), path: path),
                    stats: Stats(statPrefix: context.statPrefix, store: context.store))
    }

    static func perRoute(_ config: Google_Protobuf_Any, store: StatsStore, path: String) throws -> (any Sendable)? {
        try Policy(try FaultProto(unpackingAny: config), path: path)
    }

    func decodeHeaders(_ request: HTTPFilterRequest) -> HTTPFilterDecision {
        let policy = request.perRouteConfig(name, as: Policy.self) ?? self.policy
        let headers = request.head.headers
        guard policy.headers.allSatisfy({ $0.matches(headers.first(name: $0.name)) }) else { return .proceed }
        if let cluster = policy.upstreamCluster, request.route?.action?.clusterNames.contains(cluster) != true {
            return .proceed
        }
        if !policy.downstreamNodes.isEmpty,
           !policy.downstreamNodes.contains(headers.first(name: "x-envoy-downstream-service-node") ?? "") {
            return .proceed
        }
        var delay: TimeAmount?
        if let (kind, numerator, denominator) = policy.delay, sampled((numerator, denominator), random: request.random) {
            switch kind {
            case .fixed(let amount): delay = amount
            case .header: delay = headers.first(name: "x-envoy-fault-delay-request").flatMap { Int64($0) }.map { .milliseconds($0) }
            }
        }
        var reply: LocalReply?
        if let (kind, numerator, denominator) = policy.abort, sampled((numerator, denominator), random: request.random) {
            reply = Self.abortReply(kind, headers: headers)
        }
        guard delay != nil || reply != nil else { return .proceed }
        if let max = policy.maxActiveFaults, stats.activeFaults.value >= max {
            stats.faultsOverflow.increment()
            return .proceed
        }
        var decision = HTTPFilterDecision(reply: reply)
        if let delay, delay > .zero {
            stats.delaysInjected.increment()
            stats.activeFaults.increment()
            decision.delay = delay
            decision.flags.insert(.delayInjected)
            decision.delayEnded = { [stats] in stats.activeFaults.decrement() }
        }
        if reply != nil { stats.abortsInjected.increment() }
        return decision
    }

    static func abortReply(_ abort: Policy.Abort, headers: HTTPHeaders) -> LocalReply? {
        var status = 0
        var grpcStatus: Int?
        switch abort {
        case .http(let code): status = code
        case .grpc(let code): grpcStatus = code
        case .header:
            if let code = headers.first(name: "x-envoy-fault-abort-request").flatMap({ Int($0) }), (200..<600).contains(code) {
                status = code
            } else if let code = headers.first(name: "x-envoy-fault-abort-grpc-request").flatMap({ Int($0) }) {
                grpcStatus = code
            } else {
                return nil
            }
        }
        // A gRPC abort answers HTTP 200 and carries its code in grpc-status.
        return LocalReply(status: HTTPResponseStatus(statusCode: grpcStatus == nil ? status : 200), body: "fault filter abort",
                          flags: .faultInjected, grpcStatus: grpcStatus, details: "fault_filter_abort")
    }
}

extension FaultFilter.Policy {
    init(_ proto: FaultProto, path: String) throws {
        if proto.hasDelay {
            let delayPath = path + ".delay"
            let kind: Delay
            switch proto.delay.faultDelaySecifier {
            case .fixedDelay(let duration)?: kind = .fixed(.milliseconds(duration.milliseconds))
            case .headerDelay?: kind = .header
            case nil: throw FieldError(delayPath, "fixed_delay or header_delay is required")
            }
            let (numerator, denominator) = try fractionOf(proto.delay.percentage, path: delayPath + ".percentage")
            delay = (kind, numerator, denominator)
        }
        if proto.hasAbort {
            let abortPath = path + ".abort"
            let kind: Abort
            switch proto.abort.errorType {
            case .httpStatus(let status)?:
                guard (200..<600).contains(status) else { throw FieldError(abortPath + ".http_status", "must be in [200, 600)") }
                kind = .http(Int(status))
            case .grpcStatus(let status)?: kind = .grpc(Int(status))
            case .headerAbort?: kind = .header
            case nil: throw FieldError(abortPath, "http_status, grpc_status or header_abort is required")
            }
            let (numerator, denominator) = try fractionOf(proto.abort.percentage, path: abortPath + ".percentage")
            abort = (kind, numerator, denominator)
        }
        headers = try proto.headers.enumerated().map { index, header in
            try HeaderMatcher(header, path: "\(path).headers[\(index)]")
        }
        upstreamCluster = proto.upstreamCluster.isEmpty ? nil : proto.upstreamCluster
        downstreamNodes = Set(proto.downstreamNodes)
        if proto.hasMaxActiveFaults { maxActiveFaults = Int64(proto.maxActiveFaults.value) }
        if proto.hasResponseRateLimit {
            throw FieldError(path + ".response_rate_limit", "response rate limits are not supported yet")
        }
    }
}
