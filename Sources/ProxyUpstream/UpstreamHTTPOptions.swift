import NIOCore
import XDSAPI

/// A cluster's `common_http_protocol_options` for its upstream connections: how long one may live
/// (`idle_timeout`, 1 hour unless set, 0 disables it; `max_connection_duration`) and how many headers a
/// response may have (`max_headers_count`, 100 unless set), from the cluster's `HttpProtocolOptions`
/// (or its older `common_http_protocol_options` field).
public struct UpstreamHTTPOptions: Sendable {
    public var idleTimeout: TimeAmount? = .hours(1)
    public var maxConnectionDuration: TimeAmount?
    public var maxHeadersCount = 100

    public init(idleTimeout: TimeAmount? = .hours(1), maxConnectionDuration: TimeAmount? = nil) {
        self.idleTimeout = idleTimeout
        self.maxConnectionDuration = maxConnectionDuration
    }

    init(_ config: Envoy_Config_Cluster_V3_Cluster) {
        var common = config.commonHTTPProtocolOptions
        var present = config.hasCommonHTTPProtocolOptions
        if let any = config.typedExtensionProtocolOptions[Cluster.httpProtocolOptionsKey],
           let options = try? Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions(unpackingAny: any),
           options.hasCommonHTTPProtocolOptions {
            common = options.commonHTTPProtocolOptions
            present = true
        }
        guard present else { return }
        func amount(_ seconds: Int64, _ nanos: Int32) -> TimeAmount? {
            let nanoseconds = seconds * 1_000_000_000 + Int64(nanos)
            return nanoseconds > 0 ? .nanoseconds(nanoseconds) : nil
        }
        if common.hasIdleTimeout { idleTimeout = amount(common.idleTimeout.seconds, common.idleTimeout.nanos) }
        if common.hasMaxConnectionDuration {
            maxConnectionDuration = amount(common.maxConnectionDuration.seconds, common.maxConnectionDuration.nanos)
        }
        if common.hasMaxHeadersCount, common.maxHeadersCount.value >= 1 { maxHeadersCount = Int(common.maxHeadersCount.value) }
    }
}
