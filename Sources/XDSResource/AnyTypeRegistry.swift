import SwiftProtobuf
import XDSAPI

/// The message types that may appear inside `google.protobuf.Any` (`typed_config`, xDS resources).
/// A type URL outside it is rejected with Envoy's wording rather than silently carried along.
public struct AnyTypeRegistry: Sendable {
    private var types: [String: any Message.Type]

    public init(_ types: [any Message.Type]) {
        var byName: [String: any Message.Type] = [:]
        for type in types {
            byName[type.protoMessageName] = type
            // swift-protobuf resolves Any in JSON through its process-wide registry.
            Google_Protobuf_Any.register(messageType: type)
        }
        self.types = byName
    }

    public func type(forMessageName name: String) -> (any Message.Type)? { types[name] }

    public func contains(messageName name: String) -> Bool { types[name] != nil }

    /// xDS resource types: what meshd serves and meshproxy accepts over ADS.
    public static let resourceTypes: [any Message.Type] = [
        Envoy_Config_Listener_V3_Listener.self,
        Envoy_Config_Route_V3_RouteConfiguration.self,
        Envoy_Config_Cluster_V3_Cluster.self,
        Envoy_Config_Endpoint_V3_ClusterLoadAssignment.self,
        Envoy_Extensions_TransportSockets_Tls_V3_Secret.self,
    ]

    /// Extension configs meshproxy implements today.
    public static let proxyExtensionTypes: [any Message.Type] = [
        Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager.self,
        Envoy_Extensions_Filters_Http_Router_V3_Router.self,
        Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions.self,
        Envoy_Extensions_Filters_Network_TcpProxy_V3_TcpProxy.self,
        Envoy_Extensions_Filters_Listener_TlsInspector_V3_TlsInspector.self,
        Envoy_Extensions_Filters_Listener_HttpInspector_V3_HttpInspector.self,
        Envoy_Extensions_AccessLoggers_File_V3_FileAccessLog.self,
        Envoy_Extensions_AccessLoggers_Stream_V3_StdoutAccessLog.self,
        Envoy_Extensions_AccessLoggers_Stream_V3_StderrAccessLog.self,
        Envoy_Config_Trace_V3_ZipkinConfig.self,
        Envoy_Config_Trace_V3_OpenTelemetryConfig.self,
        Envoy_Config_Metrics_V3_StatsdSink.self,
        Envoy_Extensions_TransportSockets_Tls_V3_DownstreamTlsContext.self,
        Envoy_Extensions_TransportSockets_Tls_V3_UpstreamTlsContext.self,
        Envoy_Extensions_TransportSockets_RawBuffer_V3_RawBuffer.self,
        Envoy_Extensions_Filters_Http_Rbac_V3_RBAC.self,
        Envoy_Extensions_Filters_Http_GrpcStats_V3_FilterConfig.self,
        Envoy_Extensions_Filters_Http_Fault_V3_HTTPFault.self,
        Envoy_Extensions_Filters_Http_LocalRatelimit_V3_LocalRateLimit.self,
        Envoy_Extensions_Filters_Http_Cors_V3_Cors.self,
        Envoy_Extensions_Filters_Http_Cors_V3_CorsPolicy.self,
        Envoy_Extensions_Retry_Host_PreviousHosts_V3_PreviousHostsPredicate.self,
    ]

    /// Config dump types, so admin output can pack them.
    public static let adminTypes: [any Message.Type] = [
        Envoy_Admin_V3_BootstrapConfigDump.self,
        Envoy_Admin_V3_ClustersConfigDump.self,
        Envoy_Admin_V3_ListenersConfigDump.self,
        Envoy_Admin_V3_ScopedRoutesConfigDump.self,
        Envoy_Admin_V3_RoutesConfigDump.self,
        Envoy_Admin_V3_SecretsConfigDump.self,
        Envoy_Admin_V3_ClustersConfigDump.StaticCluster.self,
        Envoy_Admin_V3_ListenersConfigDump.StaticListener.self,
        Envoy_Admin_V3_RoutesConfigDump.StaticRouteConfig.self,
        Envoy_Admin_V3_ClustersConfigDump.DynamicCluster.self,
        Envoy_Admin_V3_ListenersConfigDump.DynamicListener.self,
        Envoy_Admin_V3_RoutesConfigDump.DynamicRouteConfig.self,
        Envoy_Admin_V3_EndpointsConfigDump.self,
        Envoy_Admin_V3_EndpointsConfigDump.DynamicEndpointConfig.self,
    ]

    public static let meshproxy = AnyTypeRegistry(resourceTypes + proxyExtensionTypes + adminTypes)
}
