import ProxyAccessLog
import ProxyCore
import ProxyRouting
import ProxyTracing
import ProxyUpstream

/// Everything one HTTP connection manager needs per request, compiled and immutable. A listener
/// publishes it through a SnapshotHolder; a request reads it once at its start.
public final class ConnectionManagerConfig: Sendable {
    public let statPrefix: String
    public let routeTable: RouteTable
    public let clusters: ClusterManager
    /// The `server` response header (Envoy's `server_name`, default "envoy").
    public let serverName: String
    public let stats: ConnectionManagerStats
    /// Request body bytes kept for retries before retries are given up (Envoy's per-connection buffer limit).
    public let retryBufferLimit: Int
    /// Bumped when the listener's filter chain changes: connections opened under an older one are
    /// drained (their next response says `connection: close`). Route and cluster updates keep it.
    public let filterChainGeneration: Int
    /// Read when a connection is accepted, to pick its codec.
    public let codec: DownstreamCodec
    public let http2Options: HTTP2Options
    /// `upgrade_configs` by lower-cased type (`websocket`, `connect`) with their `enabled`, which a
    /// a route's `upgrade_configs` override: enabled upgrades are forwarded and, on a 101, tunnelled;
    /// upgrades enabled by neither are refused with 403.
    public let upgradeTypes: [String: Bool]
    /// `access_log`: written when each stream ends.
    public let accessLoggers: [AccessLogger]
    /// `tracing`, with its provider.
    public let tracer: (any HTTPTracer)?
    /// `forward_client_cert_details` / `set_current_client_cert_details`.
    public let forwardClientCert: ForwardClientCert
    /// The HTTP filters before the router (RBAC, fault, local rate limit...), in config order.
    public let filters: [any HTTPFilter]
    /// `envoy.filters.http.grpc_stats`, when configured.
    public let grpcStats: GRPCStatsFilter?
    /// Stream and connection timeouts (`stream_idle_timeout`, `request_timeout`, `idle_timeout`...).
    public let timeouts: ConnectionTimeouts
    /// `common_http_protocol_options.max_headers_count`: a request with more headers is refused (431).
    public let maxRequestHeadersCount: Int
    /// `max_request_headers_kb` in bytes (60 KB unless set): a longer request head gets 431.
    public let maxRequestHeadersBytes: Int
    /// `common_http_protocol_options.headers_with_underscores_action`.
    public enum UnderscoreHeaders: Sendable { case allow, reject, drop }
    public let underscoreHeaders: UnderscoreHeaders
    /// `normalize_path` and `merge_slashes`, applied to a request's path before routing.
    public let pathNormalizer: PathNormalizer
    /// `use_remote_address` and the rest of what makes a request internal.
    public let forwardedFor: ForwardedFor

    public init(statPrefix: String, routeTable: RouteTable, clusters: ClusterManager, serverName: String = "envoy",
                stats: ConnectionManagerStats, retryBufferLimit: Int = 1 << 20, filterChainGeneration: Int = 0,
                codec: DownstreamCodec = .auto, http2Options: HTTP2Options = HTTP2Options(),
                upgradeTypes: [String: Bool] = [:], accessLoggers: [AccessLogger] = [], tracer: (any HTTPTracer)? = nil,
                forwardClientCert: ForwardClientCert = ForwardClientCert(), filters: [any HTTPFilter] = [],
                grpcStats: GRPCStatsFilter? = nil, timeouts: ConnectionTimeouts = ConnectionTimeouts(),
                maxRequestHeadersCount: Int = 100, maxRequestHeadersBytes: Int = HTTP1Syntax.maximumHeadSize,
                pathNormalizer: PathNormalizer = PathNormalizer(normalize: false, mergeSlashes: false),
                underscoreHeaders: UnderscoreHeaders = .allow, forwardedFor: ForwardedFor = ForwardedFor()) {
        self.forwardedFor = forwardedFor
        self.underscoreHeaders = underscoreHeaders
        self.pathNormalizer = pathNormalizer
        self.timeouts = timeouts
        self.maxRequestHeadersCount = maxRequestHeadersCount
        self.maxRequestHeadersBytes = maxRequestHeadersBytes
        self.tracer = tracer
        self.grpcStats = grpcStats
        self.filters = filters
        self.forwardClientCert = forwardClientCert
        self.upgradeTypes = upgradeTypes
        self.accessLoggers = accessLoggers
        self.filterChainGeneration = filterChainGeneration
        self.codec = codec
        self.http2Options = http2Options
        self.statPrefix = statPrefix
        self.routeTable = routeTable
        self.clusters = clusters
        self.serverName = serverName
        self.stats = stats
        self.retryBufferLimit = retryBufferLimit
    }
}
