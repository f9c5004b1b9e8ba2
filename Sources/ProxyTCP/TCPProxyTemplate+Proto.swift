import NIOCore
import ProxyAccessLog
import ProxyCore
import ProxyUpstream
import XDSAPI
import XDSResource

public typealias TCPProxyProto = Envoy_Extensions_Filters_Network_TcpProxy_V3_TcpProxy

/// A `tcp_proxy` filter's settings, checked once; `config(clusters:)` binds them to the clusters of
/// the moment.
public struct TCPProxyTemplate: Sendable {
    public let statPrefix: String
    let targets: [TCPProxyConfig.Target]
    let idleTimeout: TimeAmount?
    let maxConnectAttempts: Int
    let stats: TCPProxyStats
    let accessLoggers: [AccessLogger]

    public init(_ proto: TCPProxyProto, path: String, store: StatsStore) throws {
        guard !proto.statPrefix.isEmpty else { throw FieldError(path + ".stat_prefix", "stat_prefix is required") }
        switch proto.clusterSpecifier {
        case .cluster(let name)?:
            guard !name.isEmpty else { throw FieldError(path + ".cluster", "a cluster name is required") }
            targets = [TCPProxyConfig.Target(cluster: name, weight: 1)]
        case .weightedClusters(let split)?:
            guard !split.clusters.isEmpty else {
                throw FieldError(path + ".weighted_clusters.clusters", "at least one cluster is required")
            }
            targets = try split.clusters.enumerated().map { index, target in
                guard !target.name.isEmpty else {
                    throw FieldError("\(path).weighted_clusters.clusters[\(index)].name", "a cluster name is required")
                }
                guard target.weight >= 1 else {
                    throw FieldError("\(path).weighted_clusters.clusters[\(index)].weight", "value must be greater than or equal to 1")
                }
                return TCPProxyConfig.Target(cluster: target.name, weight: target.weight)
            }
        case nil:
            throw FieldError(path, "one of cluster or weighted_clusters is required")
        }
        accessLoggers = try AccessLogger.compile(proto.accessLog, path: path + ".access_log")
        if proto.hasTunnelingConfig { throw FieldError(path + ".tunneling_config", "tunneling is not supported yet") }
        if proto.hasOnDemand { throw FieldError(path + ".on_demand", "on-demand clusters are not supported") }
        if proto.hasMaxDownstreamConnectionDuration {
            throw FieldError(path + ".max_downstream_connection_duration", "not supported yet")
        }
        if proto.hasIdleTimeout {
            let ms = proto.idleTimeout.milliseconds
            idleTimeout = ms > 0 ? .milliseconds(ms) : nil
        } else {
            idleTimeout = .hours(1)
        }
        maxConnectAttempts = proto.hasMaxConnectAttempts ? Int(proto.maxConnectAttempts.value) : 1
        guard maxConnectAttempts >= 1 else {
            throw FieldError(path + ".max_connect_attempts", "value must be greater than or equal to 1")
        }
        statPrefix = proto.statPrefix
        stats = TCPProxyStats(statPrefix: proto.statPrefix, store: store)
    }

    /// The cluster names this filter may connect to.
    public var clusterNames: [String] { targets.map(\.cluster) }

    public func config(clusters: ClusterManager) -> TCPProxyConfig {
        TCPProxyConfig(statPrefix: statPrefix, targets: targets, clusters: clusters, idleTimeout: idleTimeout,
                       maxConnectAttempts: maxConnectAttempts, stats: stats, accessLoggers: accessLoggers)
    }
}
