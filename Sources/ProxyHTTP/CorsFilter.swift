import NIOHTTP1
import ProxyCore
import ProxyRouting
import SwiftProtobuf
import XDSAPI
import XDSResource

typealias CorsPolicyProto = Envoy_Extensions_Filters_Http_Cors_V3_CorsPolicy

/// `envoy.filters.http.cors`: a route's or virtual host's `CorsPolicy` (`typed_per_filter_config`)
/// decides. A preflight (OPTIONS with `access-control-request-method`) from an allowed origin is
/// answered by the proxy with the policy's headers; other requests from an allowed origin go on and
/// their responses carry `access-control-allow-origin` (and credentials, exposed headers). Requests
/// from other origins pass untouched, as in Envoy; `http.<prefix>.cors.origin_valid|origin_invalid`.
struct CorsFilter: HTTPFilter, HTTPFilterFactory {
    static let configType = Envoy_Extensions_Filters_Http_Cors_V3_Cors.protoMessageName
    static let perRouteConfigType = CorsPolicyProto.protoMessageName

    struct Policy: Sendable {
        var origins: [StringMatch]
        var allowMethods: String
        var allowHeaders: String
        var exposeHeaders: String
        var maxAge: String
        var allowCredentials: Bool
        var enabled: (numerator: UInt64, denominator: UInt64)
    }

    let name: String
    let originValid: Counter
    let originInvalid: Counter

    static func make(_ config: Google_Protobuf_Any, name: String, context: HTTPFilterContext, path: String) throws
        -> any HTTPFilter
    {
        _ = try Envoy_Extensions_Filters_Http_Cors_V3_Cors(unpackingAny: config)
        let scope = StatScope(store: context.store, prefix: "http.\(context.statPrefix).cors.", extractedPrefix: "http.cors.",
                              tags: [StatTags.Tag("envoy_http_conn_manager_prefix", context.statPrefix)])
        return CorsFilter(name: name, originValid: scope.counter("origin_valid"), originInvalid: scope.counter("origin_invalid"))
    }

    static func perRoute(_ config: Google_Protobuf_Any, store: StatsStore, path: String) throws -> (any Sendable)? {
        let proto = try CorsPolicyProto(unpackingAny: config)
        if proto.hasShadowEnabled || proto.hasAllowPrivateNetworkAccess || proto.hasForwardNotMatchingPreflights {
            throw FieldError(path, "shadow_enabled, allow_private_network_access and forward_not_matching_preflights "
                + "are not supported yet")
        }
        return Policy(
            origins: try proto.allowOriginStringMatch.enumerated().map { index, matcher in
                try StringMatch(matcher, path: "\(path).allow_origin_string_match[\(index)]")
            },
            allowMethods: proto.allowMethods, allowHeaders: proto.allowHeaders, exposeHeaders: proto.exposeHeaders,
            maxAge: proto.maxAge, allowCredentials: proto.hasAllowCredentials && proto.allowCredentials.value,
            enabled: proto.hasFilterEnabled
                ? try fractionOf(proto.filterEnabled.defaultValue, path: path + ".filter_enabled.default_value") : (100, 100))
    }

    func decodeHeaders(_ request: HTTPFilterRequest) -> HTTPFilterDecision {
        guard let policy = request.perRouteConfig(name, as: Policy.self),
              let origin = request.head.headers.first(name: "origin"), !origin.isEmpty
        else { return .proceed }
        guard sampled(policy.enabled, random: request.random) else { return .proceed }
        guard policy.origins.contains(where: { $0.matches(origin) }) else {
            originInvalid.increment()
            return .proceed
        }
        originValid.increment()
        var headers = [("access-control-allow-origin", origin)]
        if policy.allowCredentials { headers.append(("access-control-allow-credentials", "true")) }
        let isPreflight = request.head.method == .OPTIONS
            && request.head.headers.first(name: "access-control-request-method").map { !$0.isEmpty } == true
        if isPreflight {
            for (header, value) in [("access-control-allow-methods", policy.allowMethods),
                                    ("access-control-allow-headers", policy.allowHeaders),
                                    ("access-control-max-age", policy.maxAge)] where !value.isEmpty {
                headers.append((header, value))
            }
        }
        if !policy.exposeHeaders.isEmpty { headers.append(("access-control-expose-headers", policy.exposeHeaders)) }
        guard isPreflight else { return HTTPFilterDecision(responseHeaders: headers) }
        return HTTPFilterDecision(reply: LocalReply(status: .ok, body: "", flags: [], details: "cors_response",
                                                    headers: headers))
    }
}
