import Foundation
import NIOHTTP1
import ProxyCore

/// A response the proxy makes itself (no route, no healthy upstream, timeout), with Envoy's bodies.
struct LocalReply: Sendable {
    var status: HTTPResponseStatus
    var body: String
    var flags: ResponseFlags
    var contentType = "text/plain"
    /// The `grpc-status` a gRPC client gets, when not the one mapped from `status`.
    var grpcStatus: Int?
    /// `%RESPONSE_CODE_DETAILS%`, in Envoy's words.
    var details = "direct_response"
    /// Adds `x-envoy-overloaded: true` (circuit breaker overflow).
    var overloaded = false
    /// Headers of the filter that answered (a CORS preflight's), first in the response.
    var headers: [(String, String)] = []

    static let noRoute = LocalReply(status: .notFound, body: "", flags: .noRouteFound, details: "route_not_found")
    static let noCluster = LocalReply(status: .serviceUnavailable, body: "", flags: .noClusterFound,
                                      details: "cluster_not_found")
    static let noHealthyUpstream = LocalReply(status: .serviceUnavailable, body: "no healthy upstream",
                                              flags: .noHealthyUpstream, details: "no_healthy_upstream")
    static let timeout = LocalReply(status: .gatewayTimeout, body: "upstream request timeout",
                                    flags: .upstreamRequestTimeout, details: "response_timeout")
    /// The stream's maximum duration (`max_stream_duration`, or a gRPC request's `grpc-timeout`) ran out:
    /// 504 once the request is complete, 408 before. Envoy sets no response flag for it.
    static func durationTimeout(requestComplete: Bool) -> LocalReply {
        streamTimeout(requestComplete: requestComplete, body: "downstream duration timeout", flags: [], grpcStatus: 4,
                      details: "max_duration_timeout")
    }
    /// `stream_idle_timeout` (or the route's `idle_timeout`): 504 once the request is complete, 408 before.
    static func streamIdleTimeout(requestComplete: Bool) -> LocalReply {
        streamTimeout(requestComplete: requestComplete, body: "stream timeout", flags: .streamIdleTimeout, grpcStatus: nil,
                      details: "stream_idle_timeout")
    }
    /// The connection manager's own stream timeouts answer 504 once the request is complete, 408 before.
    private static func streamTimeout(requestComplete: Bool, body: String, flags: ResponseFlags, grpcStatus: Int?,
                                      details: String) -> LocalReply {
        LocalReply(status: requestComplete ? .gatewayTimeout : .requestTimeout, body: body, flags: flags,
                   grpcStatus: grpcStatus, details: details)
    }
    /// `request_timeout`: the request had not fully arrived in time.
    static let requestTimeout = LocalReply(status: .requestTimeout, body: "request timeout", flags: [],
                                           details: "request_overall_timeout")
    /// `per_try_idle_timeout` on the last try.
    static let perTryIdleTimeout = LocalReply(status: .gatewayTimeout, body: "upstream request timeout",
                                              flags: .upstreamRequestTimeout, details: "upstream_per_try_idle_timeout")
    /// More request headers than `max_headers_count`.
    static let tooManyHeaders = LocalReply(status: .requestHeaderFieldsTooLarge, body: "Request Header Fields Too Large",
                                           flags: .downstreamProtocolError, details: "http1.too_many_headers")
    /// `headers_with_underscores_action: REJECT_REQUEST` and a header name with an underscore.
    static func underscoreHeader(http2: Bool) -> LocalReply {
        LocalReply(status: .badRequest, body: "Bad Request", flags: .downstreamProtocolError,
                   details: http2 ? "http2.unexpected_underscore" : "http1.unexpected_underscore")
    }
    static func rbacDenied(policy: String) -> LocalReply {
        LocalReply(status: .forbidden, body: "RBAC: access denied", flags: [],
                   details: "rbac_access_denied_matched_policy[\(policy)]")
    }
    /// An upgrade the connection manager has no `upgrade_configs` entry for.
    static let upgradeForbidden = LocalReply(status: .forbidden, body: "", flags: [], details: "upgrade_failed")
    /// The circuit breaker refused the request (max_requests, max_pending_requests).
    static let overflow = LocalReply(
        status: .serviceUnavailable, body: "upstream connect error or disconnect/reset before headers. reset reason: overflow",
        flags: .upstreamOverflow, details: "upstream_reset_before_response_started{overflow}", overloaded: true)
    static let retryOverflow = LocalReply(status: .serviceUnavailable, body: "", flags: .upstreamOverflow,
                                          details: "upstream_retry_overflow")

    /// `upstream connect error or disconnect/reset before headers. [retried and the latest ]reset reason: X`
    /// The details add the transport failure, when known: `{remote_connection_failure|delayed_connect_error:_...}`.
    static func reset(reason: String, retried: Bool, flags: ResponseFlags, transportFailure: String? = nil) -> LocalReply {
        let lead = "upstream connect error or disconnect/reset before headers. "
        let detail = retried ? "retried and the latest reset reason: \(reason)" : "reset reason: \(reason)"
        var code = TransportFailure.logged(reason)
        if let transportFailure { code += "|" + TransportFailure.logged(transportFailure) }
        // Envoy answers a reset for a broken response (the upstream's protocol error) with 502.
        return LocalReply(status: reason == "protocol error" ? .badGateway : .serviceUnavailable, body: lead + detail, flags: flags,
                          details: "upstream_reset_before_response_started{\(code)}")
    }
}
