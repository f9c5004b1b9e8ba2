import ProxyCore
import ProxyHTTP
import ProxyRouting
import ProxyUpstream
import XDSAPI

typealias HCMProto = Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager

/// A listener or HCM config meshproxy cannot serve, with the field path of the problem.
public struct ListenerConfigError: Error, Sendable, CustomStringConvertible {
    public var fieldPath: String
    public var reason: String
    public init(_ fieldPath: String, _ reason: String) {
        self.fieldPath = fieldPath
        self.reason = reason
    }
    public var description: String { "\(fieldPath): \(reason)" }
}

extension ConnectionManagerConfig {
    /// Compiles an HttpConnectionManager against the current clusters.
    static func compile(_ hcm: HCMProto, path: String, listenerStatScope: String, clusters: ClusterManager,
                        store: StatsStore) throws -> ConnectionManagerConfig {
        guard !hcm.statPrefix.isEmpty else { throw ListenerConfigError(path + ".stat_prefix", "stat_prefix is required") }
        switch hcm.codecType {
        case .auto, .http1: break
        default: throw ListenerConfigError(path + ".codec_type", "codec_type \(hcm.codecType) is not supported yet")
        }
        try validateFilters(hcm.httpFilters, path: path + ".http_filters")
        let routeConfig: Envoy_Config_Route_V3_RouteConfiguration
        switch hcm.routeSpecifier {
        case .routeConfig(let config): routeConfig = config
        case .rds: throw ListenerConfigError(path + ".rds", "RDS needs the xDS client, which is not implemented yet")
        case .scopedRoutes: throw ListenerConfigError(path + ".scoped_routes", "scoped routes are not supported")
        case nil: throw ListenerConfigError(path, "one of route_config or rds is required")
        }
        let table: RouteTable
        do {
            table = try RouteTable(routeConfig)
        } catch let error as RouteConfigError {
            throw ListenerConfigError(path + ".route_config." + error.fieldPath, error.reason)
        }
        // Like Envoy's validate_clusters for static route configs: a route to nowhere is an error.
        for host in table.virtualHosts {
            for route in host.routes where clusters[route.action.cluster] == nil {
                throw ListenerConfigError(path + ".route_config", "route: unknown cluster '\(route.action.cluster)'")
            }
        }
        let stats = ConnectionManagerStats(statPrefix: hcm.statPrefix, listenerScope: listenerStatScope, store: store)
        let serverName = hcm.serverName.isEmpty ? "envoy" : hcm.serverName
        return ConnectionManagerConfig(statPrefix: hcm.statPrefix, routeTable: table, clusters: clusters,
                                       serverName: serverName, stats: stats)
    }

    static let routerFilterName = "envoy.filters.http.router"

    /// Only the router is implemented; it must be last. A router without `typed_config` means its
    /// default config (Envoy 1.19 accepted that; 1.40 does not; meshproxy does, deliberately).
    static func validateFilters(_ filters: [Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpFilter],
                                path: String) throws {
        guard !filters.isEmpty else { throw ListenerConfigError(path, "the router filter is required") }
        for (index, filter) in filters.enumerated() {
            let filterPath = "\(path)[\(index)]"
            let isRouter: Bool
            switch filter.configType {
            case .typedConfig(let any):
                isRouter = any.typeURL.hasSuffix("/envoy.extensions.filters.http.router.v3.Router")
            case nil:
                isRouter = filter.name == routerFilterName
            default:
                isRouter = false
            }
            guard isRouter else {
                let url = filter.typedConfig.typeURL
                throw ListenerConfigError(filterPath,
                                          "Didn't find a registered implementation for '\(filter.name)' with type URL: '\(url)'")
            }
            guard index == filters.count - 1 else {
                throw ListenerConfigError(filterPath, "the router must be the last HTTP filter")
            }
        }
    }
}
