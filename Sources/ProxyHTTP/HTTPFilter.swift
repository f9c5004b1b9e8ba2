import NIOCore
import NIOHTTP1
import ProxyCore
import ProxyRouting
import SwiftProtobuf

/// An HTTP filter before the router. Each request's headers pass the connection manager's filters
/// in config order once its route is known (nil when none matched), and each filter lets the
/// request go on, holds it for a while, or answers it. A new filter is a type conforming to
/// `HTTPFilterFactory` and one line in `HTTPFilterRegistry`; the connection manager is not edited.
public protocol HTTPFilter: Sendable {
    func decodeHeaders(_ request: HTTPFilterRequest) -> HTTPFilterDecision
}

/// What a filter sees of a request.
public struct HTTPFilterRequest {
    public let head: HTTPRequestHead
    /// The path without its query.
    public let path: Substring
    public let route: RouteEntry?
    /// The downstream connection (for addresses), and what its TLS handshake established.
    public let channel: (any Channel)?
    public let tls: DownstreamTLSInfo?
    public let isGRPC: Bool
    /// Draws for percentages (a fault's share of requests).
    public let random: @Sendable () -> UInt64

    /// The route's `typed_per_filter_config` for the filter named `name`, if it is of this type.
    public func perRouteConfig<Config>(_ name: String, as type: Config.Type) -> Config? {
        route?.perFilterConfigs[name] as? Config
    }
}

/// A filter's answer: go on (the default), wait `delay` first, and/or answer with `reply`.
public struct HTTPFilterDecision: Sendable {
    public var delay: TimeAmount?
    var reply: LocalReply?
    /// Response flags the filter's action sets (`DI` for a delay).
    public var flags: ResponseFlags = []
    /// Called when the delay is over (or the request went away during it).
    public var delayEnded: (@Sendable () -> Void)?
    /// Headers the response gets when it comes (CORS's `access-control-allow-origin`).
    public var responseHeaders: [(String, String)] = []

    public static let proceed = HTTPFilterDecision()

    init(delay: TimeAmount? = nil, reply: LocalReply? = nil, flags: ResponseFlags = [],
         responseHeaders: [(String, String)] = []) {
        self.delay = delay
        self.reply = reply
        self.flags = flags
        self.responseHeaders = responseHeaders
    }
}

/// What a filter's factory is given: where its stats go and under which connection manager.
public struct HTTPFilterContext: Sendable {
    /// The connection manager's `stat_prefix`.
    public let statPrefix: String
    public let store: StatsStore

    public init(statPrefix: String, store: StatsStore) {
        self.statPrefix = statPrefix
        self.store = store
    }
}

/// Makes a filter from its `typed_config`, and compiles its per-route configs.
public protocol HTTPFilterFactory {
    /// The full name of the `typed_config` message (`envoy.extensions.filters.http.fault.v3.HTTPFault`).
    static var configType: String { get }
    static func make(_ config: Google_Protobuf_Any, name: String, context: HTTPFilterContext, path: String) throws
        -> any HTTPFilter
    /// The type of its `typed_per_filter_config` (the filter's own, unless it has one of its own, as CORS).
    static var perRouteConfigType: String { get }
    /// A `typed_per_filter_config` of that type; nil for a filter that reads none.
    static func perRoute(_ config: Google_Protobuf_Any, store: StatsStore, path: String) throws -> (any Sendable)?
}

extension HTTPFilterFactory {
    public static var perRouteConfigType: String { configType }

    public static func perRoute(_ config: Google_Protobuf_Any, store: StatsStore, path: String) throws -> (any Sendable)? {
        nil
    }
}
