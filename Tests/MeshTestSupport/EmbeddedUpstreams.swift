import NIOCore
import NIOEmbedded
import NIOHTTP1
import ProxyCore
import ProxyHTTP
import ProxyRouting
import ProxyUpstream
import XDSAPI

/// An UpstreamConnector whose connections are EmbeddedChannels on one EmbeddedEventLoop, so a test
/// reads what the router sends upstream and writes the upstream's response by hand.
public final class EmbeddedUpstreamConnector: UpstreamConnector, @unchecked Sendable {
    public let loop: EmbeddedEventLoop
    /// Every connection opened, in order.
    public private(set) var channels: [EmbeddedChannel] = []
    /// When true, connects fail as if nothing listened on the port.
    public var refuseConnections = false

    public init(loop: EmbeddedEventLoop) {
        self.loop = loop
    }

    public func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                        handler: UpstreamConnectionHandler) -> EventLoopFuture<any Channel> {
        if refuseConnections {
            return loop.makeFailedFuture(ChannelError.connectTimeout(timeout))
        }
        let channel = EmbeddedChannel(handler: handler, loop: self.loop)
        channels.append(channel)
        _ = try? channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: host.port)).wait()
        return loop.makeSucceededFuture(channel)
    }

    public func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                        initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
        if refuseConnections {
            return loop.makeFailedFuture(ChannelError.connectTimeout(timeout))
        }
        let channel = EmbeddedChannel(loop: self.loop)
        channels.append(channel)
        do {
            try initializer(channel)
        } catch {
            return loop.makeFailedFuture(error)
        }
        _ = try? channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: host.port)).wait()
        return loop.makeSucceededFuture(channel)
    }
}

/// Builds the smallest runnable proxy config: one virtual host routing `pathPrefix` to cluster `web` with
/// one host at 10.0.0.1:8080.
public enum TestProxyConfig {
    public static func make(loop: EmbeddedEventLoop, connector: EmbeddedUpstreamConnector, route: RouteAction? = nil,
                            pathPrefix: String = "/", store: StatsStore = StatsStore(),
                            timeouts: ConnectionTimeouts = ConnectionTimeouts(),
                            cluster customize: (inout Envoy_Config_Cluster_V3_Cluster) -> Void = { _ in })
        throws -> ConnectionManagerConfig
    {
        var cluster = Envoy_Config_Cluster_V3_Cluster()
        cluster.name = "web"
        var socket = Envoy_Config_Core_V3_SocketAddress()
        socket.address = "10.0.0.1"
        socket.portValue = 8080
        var endpoint = Envoy_Config_Endpoint_V3_LbEndpoint()
        endpoint.endpoint.address.socketAddress = socket
        var locality = Envoy_Config_Endpoint_V3_LocalityLbEndpoints()
        locality.lbEndpoints = [endpoint]
        cluster.loadAssignment.endpoints = [locality]
        customize(&cluster)
        let runtime = try Cluster(cluster, stats: store, addedViaAPI: false, loops: [loop], connector: connector)
        let table = RouteTable(name: "local", virtualHosts: [
            VirtualHost(name: "all", domains: ["*"], routes: [
                RouteEntry(match: RouteMatch(path: .prefix(pathPrefix)), action: route ?? RouteAction(cluster: "web")),
            ]),
        ])
        return ConnectionManagerConfig(
            statPrefix: "ingress_http", routeTable: table, clusters: ClusterManager([runtime]),
            stats: ConnectionManagerStats(statPrefix: "ingress_http", listenerScope: "127.0.0.1_10000", store: store),
            timeouts: timeouts)
    }
}
