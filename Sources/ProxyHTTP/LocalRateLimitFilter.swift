import NIOCore
import NIOHTTP1
import ProxyCore
import ProxyRouting
import SwiftProtobuf
import XDSAPI
import XDSResource

typealias LocalRateLimitProto = Envoy_Extensions_Filters_Http_LocalRatelimit_V3_LocalRateLimit

/// `envoy.filters.http.local_ratelimit`: a token bucket shared by the proxy's event loops, for the
/// listener's connection manager or, from a route's `typed_per_filter_config`, for that route alone.
/// Requests beyond it get Envoy's 429 `local_rate_limited` where the limit is enforced, and are only
/// counted where it is merely enabled (`filter_enabled` and `filter_enforced`, both 0 % unless set).
struct LocalRateLimitFilter: HTTPFilter, HTTPFilterFactory {
    static let configType = LocalRateLimitProto.protoMessageName

    /// One compiled LocalRateLimit: its bucket (none: no limit here) and `<stat_prefix>.http_local_rate_limit.*`.
    final class Limiter: Sendable {
        let bucket: TokenBucket?
        let enabled: (numerator: UInt64, denominator: UInt64)
        let enforced: (numerator: UInt64, denominator: UInt64)
        let status: HTTPResponseStatus
        let grpcStatus: Int?
        let enabledCount, enforcedCount, okCount, rateLimitedCount: Counter

        init(_ proto: LocalRateLimitProto, store: StatsStore, path: String) throws {
            guard !proto.statPrefix.isEmpty else { throw FieldError(path + ".stat_prefix", "a stat_prefix is required") }
            if !proto.descriptors.isEmpty || !proto.rateLimits.isEmpty || proto.hasLocalClusterRateLimit
                || proto.localRateLimitPerDownstreamConnection || proto.enableXRatelimitHeaders != .off
                || !proto.requestHeadersToAddWhenNotEnforced.isEmpty || !proto.responseHeadersToAdd.isEmpty {
                throw FieldError(path, "descriptors, rate_limits, local_cluster_rate_limit, per-connection buckets, "
                    + "x-ratelimit headers and header additions are not supported yet")
            }
            if proto.hasTokenBucket {
                let bucket = proto.tokenBucket
                guard bucket.hasFillInterval, bucket.fillInterval.milliseconds > 0 else {
                    throw FieldError(path + ".token_bucket.fill_interval", "a fill interval above 0 is required")
                }
                self.bucket = TokenBucket(maxTokens: Int64(bucket.maxTokens),
                                          tokensPerFill: bucket.hasTokensPerFill ? Int64(bucket.tokensPerFill.value) : 1,
                                          fillInterval: .milliseconds(bucket.fillInterval.milliseconds))
            } else {
                bucket = nil
            }
            enabled = proto.hasFilterEnabled
                ? try fractionOf(proto.filterEnabled.defaultValue, path: path + ".filter_enabled.default_value") : (0, 100)
            enforced = proto.hasFilterEnforced
                ? try fractionOf(proto.filterEnforced.defaultValue, path: path + ".filter_enforced.default_value") : (0, 100)
            let code = proto.hasStatus ? proto.status.code.rawValue : 429
            status = HTTPResponseStatus(statusCode: code < 400 ? 429 : code)
            grpcStatus = proto.rateLimitedAsResourceExhausted ? 8 : nil
            let prefix = "\(proto.statPrefix).http_local_rate_limit."
            let scope = StatScope(store: store, prefix: prefix, extractedPrefix: prefix, tags: [])
            enabledCount = scope.counter("enabled")
            enforcedCount = scope.counter("enforced")
            okCount = scope.counter("ok")
            rateLimitedCount = scope.counter("rate_limited")
            _ = scope.counter("shadow_mode")
        }

        func decide(random: () -> UInt64) -> HTTPFilterDecision {
            guard let bucket, sampled(enabled, random: random) else { return .proceed }
            enabledCount.increment()
            if bucket.consume() {
                okCount.increment()
                return .proceed
            }
            rateLimitedCount.increment()
            guard sampled(enforced, random: random) else { return .proceed }
            enforcedCount.increment()
            return HTTPFilterDecision(reply: LocalReply(status: status, body: "local_rate_limited", flags: .rateLimited,
                                                        grpcStatus: grpcStatus, details: "local_rate_limited"))
        }
    }

    let name: String
    let limiter: Limiter

    static func make(_ config: Google_Protobuf_Any, name: String, context: HTTPFilterContext, path: String) throws
        -> any HTTPFilter
    {
        LocalRateLimitFilter(name: name, limiter: try Limiter(try LocalRateLimitProto(unpackingAny: config),
                                                                store: context.store, path: path))
    }

    static func perRoute(_ config: Google_Protobuf_Any, store: StatsStore, path: String) throws -> (any Sendable)? {
        try Limiter(try LocalRateLimitProto(unpackingAny: config), store: store, path: path)
    }

    func decodeHeaders(_ request: HTTPFilterRequest) -> HTTPFilterDecision {
        (request.perRouteConfig(name, as: Limiter.self) ?? limiter).decide(random: request.random)
    }
}
