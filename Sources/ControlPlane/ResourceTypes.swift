import SwiftProtobuf
import XDSAPI
import XDSResource

/// The xDS resource types meshd serves, in make-before-break push order.
public enum ResourceType: String, Sendable, CaseIterable {
    case cluster, endpoint, listener, route, secret

    public var typeURL: String {
        switch self {
        case .cluster: TypeURL.cluster
        case .endpoint: TypeURL.clusterLoadAssignment
        case .listener: TypeURL.listener
        case .route: TypeURL.routeConfiguration
        case .secret: TypeURL.secret
        }
    }

    public init?(typeURL: String) {
        guard let type = Self.allCases.first(where: { $0.typeURL == typeURL }) else { return nil }
        self = type
    }

    /// LDS and CDS are wildcard types: an empty subscription means "everything".
    public var isWildcardByDefault: Bool { self == .listener || self == .cluster }

    /// Short names for logs and /debug/syncz, as Istio prints them.
    public var shortName: String {
        switch self {
        case .cluster: "CDS"
        case .endpoint: "EDS"
        case .listener: "LDS"
        case .route: "RDS"
        case .secret: "SDS"
        }
    }

    /// A resource's name field (ClusterLoadAssignment names itself by cluster_name).
    static func name(of message: any Message) -> String? {
        switch message {
        case let listener as Envoy_Config_Listener_V3_Listener: listener.name
        case let route as Envoy_Config_Route_V3_RouteConfiguration: route.name
        case let cluster as Envoy_Config_Cluster_V3_Cluster: cluster.name
        case let assignment as Envoy_Config_Endpoint_V3_ClusterLoadAssignment: assignment.clusterName
        case let secret as Envoy_Extensions_TransportSockets_Tls_V3_Secret: secret.name
        default: nil
        }
    }
}

extension AnyTypeRegistry {
    /// Everything meshd can check inside a resource file: the resource types and every extension
    /// config of the generated API, so files that real Envoy accepts validate here too.
    public static let meshd = AnyTypeRegistry(resourceTypes + proxyExtensionTypes + [
        Envoy_Extensions_Filters_Network_TcpProxy_V3_TcpProxy.self,
        Envoy_Extensions_Filters_Http_Fault_V3_HTTPFault.self,
        Envoy_Extensions_Filters_Http_LocalRatelimit_V3_LocalRateLimit.self,
        Envoy_Extensions_TransportSockets_Tls_V3_DownstreamTlsContext.self,
        Envoy_Extensions_TransportSockets_Tls_V3_UpstreamTlsContext.self,
        Envoy_Extensions_AccessLoggers_File_V3_FileAccessLog.self,
        Envoy_Extensions_AccessLoggers_Stream_V3_StdoutAccessLog.self,
        Envoy_Extensions_AccessLoggers_Stream_V3_StderrAccessLog.self,
    ])
}
