import ProxyCore
import ProxyRouting
import SwiftProtobuf
import XDSResource

/// The HTTP filters meshproxy implements, by `typed_config` type. The router is not among them: it
/// is the connection manager's own last step.
public enum HTTPFilterRegistry {
    // Immutable lists of types, built once.
    nonisolated(unsafe) static let factories: [any HTTPFilterFactory.Type] = [
        RBACHTTPFilter.self,
        FaultFilter.self,
        LocalRateLimitFilter.self,
        CorsFilter.self,
    ]

    nonisolated(unsafe) private static let byTypeURL: [String: any HTTPFilterFactory.Type] = Dictionary(
        uniqueKeysWithValues: factories.map { (TypeURL.prefix + $0.configType, $0) })
    nonisolated(unsafe) private static let byPerRouteTypeURL: [String: any HTTPFilterFactory.Type] = Dictionary(
        uniqueKeysWithValues: factories.map { (TypeURL.prefix + $0.perRouteConfigType, $0) })

    public static func factory(forTypeURL url: String) -> (any HTTPFilterFactory.Type)? {
        byTypeURL[url]
    }

    /// Compiles virtual hosts' and routes' `typed_per_filter_config` for these filters; a type no
    /// filter reads is refused, as Envoy refuses it.
    public static func perFilterConfigs(store: StatsStore) -> PerFilterConfigCompiler {
        PerFilterConfigCompiler { name, config, path in
            guard let factory = byPerRouteTypeURL[config.typeURL] else {
                throw FieldError(path, "Didn't find a registered implementation for '\(name)' with type URL: "
                    + "'\(config.typeURL)'")
            }
            return try factory.perRoute(config, store: store, path: path)
        }
    }
}
