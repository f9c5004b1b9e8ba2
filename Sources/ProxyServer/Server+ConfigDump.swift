import Foundation
import SwiftProtobuf
import XDSAPI
import ProxyTLS
import ProxyXDS
import XDSResource

extension Server {
    /// `/config_dump`: Envoy's ConfigDump of the bootstrap and the static resources, with the proto
    /// field names Envoy prints. `resource` selects one repeated field (`static_clusters`, ...), and
    /// `nameRegex` keeps the resources whose name matches.
    public func configDumpJSON(resource: String?, nameRegex: String?, includeEDS: Bool = false) throws -> String {
        let updated = Google_Protobuf_Timestamp(date: loadedAt)
        let regex = try nameRegex.map { try Regex($0) }
        func keep(_ name: String) -> Bool {
            guard let regex else { return true }
            return (try? regex.firstMatch(in: name)) != nil
        }

        var bootstrapDump = Envoy_Admin_V3_BootstrapConfigDump()
        bootstrapDump.bootstrap = bootstrapForDump()
        bootstrapDump.lastUpdated = updated

        let view = config.view
        var clustersDump = Envoy_Admin_V3_ClustersConfigDump()
        for cluster in view.clusters.ordered where keep(cluster.name) {
            if let dynamic = view.dynamicClusters[cluster.name] {
                var entry = Envoy_Admin_V3_ClustersConfigDump.DynamicCluster()
                entry.versionInfo = dynamic.version
                entry.cluster = try Google_Protobuf_Any(message: cluster.config)
                entry.lastUpdated = Google_Protobuf_Timestamp(date: dynamic.lastUpdated)
                clustersDump.dynamicActiveClusters.append(entry)
            } else {
                var entry = Envoy_Admin_V3_ClustersConfigDump.StaticCluster()
                entry.cluster = try Google_Protobuf_Any(message: cluster.config)
                entry.lastUpdated = updated
                clustersDump.staticClusters.append(entry)
            }
        }
        for cluster in view.warmingClusters where keep(cluster.name) {
            var entry = Envoy_Admin_V3_ClustersConfigDump.DynamicCluster()
            entry.cluster = try Google_Protobuf_Any(message: cluster.config)
            clustersDump.dynamicWarmingClusters.append(entry)
        }
        var listenersDump = Envoy_Admin_V3_ListenersConfigDump()
        for listener in view.listeners where keep(listener.name) {
            if view.staticListenerNames.contains(listener.name) {
                var entry = Envoy_Admin_V3_ListenersConfigDump.StaticListener()
                entry.listener = try Google_Protobuf_Any(message: listener.config)
                entry.lastUpdated = updated
                listenersDump.staticListeners.append(entry)
            } else {
                var state = Envoy_Admin_V3_ListenersConfigDump.DynamicListenerState()
                state.versionInfo = listener.versionInfo
                state.listener = try Google_Protobuf_Any(message: listener.config)
                state.lastUpdated = Google_Protobuf_Timestamp(date: listener.lastUpdated)
                var entry = Envoy_Admin_V3_ListenersConfigDump.DynamicListener()
                entry.name = listener.name
                if listener.isWarm { entry.activeState = state } else { entry.warmingState = state }
                listenersDump.dynamicListeners.append(entry)
            }
        }
        var routesDump = Envoy_Admin_V3_RoutesConfigDump()
        for listener in view.listeners where view.staticListenerNames.contains(listener.name) {
            for template in listener.templates {
                guard case .inline(_, let routes) = template.routeSource, keep(routes.name) else { continue }
                var entry = Envoy_Admin_V3_RoutesConfigDump.StaticRouteConfig()
                entry.routeConfig = try Google_Protobuf_Any(message: routes)
                entry.lastUpdated = updated
                routesDump.staticRouteConfigs.append(entry)
            }
        }
        for (name, failure) in view.failures[XDSTypes.cluster] ?? [:] where keep(name) {
            if let index = clustersDump.dynamicActiveClusters.firstIndex(where: { $0.versionInfo.isEmpty == false
                && (try? Envoy_Config_Cluster_V3_Cluster(unpackingAny: $0.cluster))?.name == name }) {
                clustersDump.dynamicActiveClusters[index].errorState = failure
            } else {
                var entry = Envoy_Admin_V3_ClustersConfigDump.DynamicCluster()
                entry.errorState = failure
                clustersDump.dynamicWarmingClusters.append(entry)
            }
        }
        for (name, failure) in view.failures[XDSTypes.listener] ?? [:] where keep(name) {
            if let index = listenersDump.dynamicListeners.firstIndex(where: { $0.name == name }) {
                listenersDump.dynamicListeners[index].errorState = failure
            } else {
                var entry = Envoy_Admin_V3_ListenersConfigDump.DynamicListener()
                entry.name = name
                entry.errorState = failure
                listenersDump.dynamicListeners.append(entry)
            }
        }
        for name in view.routes.keys.sorted() where keep(name) {
            let route = view.routes[name]!
            var entry = Envoy_Admin_V3_RoutesConfigDump.DynamicRouteConfig()
            entry.versionInfo = route.version
            entry.routeConfig = try Google_Protobuf_Any(message: route.config)
            entry.lastUpdated = Google_Protobuf_Timestamp(date: route.lastUpdated)
            if let failure = view.failures[XDSTypes.route]?[name] { entry.errorState = failure }
            routesDump.dynamicRouteConfigs.append(entry)
        }
        for (name, failure) in view.failures[XDSTypes.route] ?? [:] where view.routes[name] == nil && keep(name) {
            var entry = Envoy_Admin_V3_RoutesConfigDump.DynamicRouteConfig()
            entry.errorState = failure
            routesDump.dynamicRouteConfigs.append(entry)
        }
        var endpointsDump = Envoy_Admin_V3_EndpointsConfigDump()
        for name in view.assignments.keys.sorted() where keep(name) {
            var entry = Envoy_Admin_V3_EndpointsConfigDump.DynamicEndpointConfig()
            entry.versionInfo = view.assignmentVersion
            entry.endpointConfig = try Google_Protobuf_Any(message: view.assignments[name]!)
            endpointsDump.dynamicEndpointConfigs.append(entry)
        }

        var secretsDump = Envoy_Admin_V3_SecretsConfigDump()
        for name in view.staticSecrets.keys.sorted() where keep(name) {
            var entry = Envoy_Admin_V3_SecretsConfigDump.StaticSecret()
            entry.name = name
            entry.lastUpdated = updated
            entry.secret = try Google_Protobuf_Any(message: Self.redacted(view.staticSecrets[name]!))
            secretsDump.staticSecrets.append(entry)
        }
        for name in view.dynamicSecrets.keys.sorted() where keep(name) {
            let dynamic = view.dynamicSecrets[name]!
            var entry = Envoy_Admin_V3_SecretsConfigDump.DynamicSecret()
            entry.name = name
            entry.versionInfo = dynamic.version
            entry.lastUpdated = Google_Protobuf_Timestamp(date: dynamic.lastUpdated)
            entry.secret = try Google_Protobuf_Any(message: Self.redacted(dynamic.secret))
            if let failure = view.failures[XDSTypes.secret]?[name] { entry.errorState = failure }
            secretsDump.dynamicActiveSecrets.append(entry)
        }

        let options = Self.dumpEncoding
        if let resource {
            let items: [any Message]
            switch resource {
            case "static_clusters": items = clustersDump.staticClusters
            case "static_listeners": items = listenersDump.staticListeners
            case "static_route_configs": items = routesDump.staticRouteConfigs
            case "dynamic_active_clusters": items = clustersDump.dynamicActiveClusters
            case "dynamic_listeners": items = listenersDump.dynamicListeners
            case "dynamic_route_configs": items = routesDump.dynamicRouteConfigs
            case "dynamic_warming_clusters": items = clustersDump.dynamicWarmingClusters
            case "dynamic_endpoint_configs": items = endpointsDump.dynamicEndpointConfigs
            case "static_secrets": items = secretsDump.staticSecrets
            case "dynamic_active_secrets": items = secretsDump.dynamicActiveSecrets
            case "dynamic_warming_secrets": items = secretsDump.dynamicWarmingSecrets
            default:
                throw ConfigDumpError(message: "unknown resource '\(resource)'")
            }
            let configs = try items.map { try Google_Protobuf_Any(message: $0).jsonString(options: options) }
            return JSONPrettyPrinter.format("{\"configs\":[\(configs.joined(separator: ","))]}")
        }
        var dump = Envoy_Admin_V3_ConfigDump()
        dump.configs = [
            try Google_Protobuf_Any(message: bootstrapDump),
            try Google_Protobuf_Any(message: clustersDump),
            try Google_Protobuf_Any(message: listenersDump),
            try Google_Protobuf_Any(message: Envoy_Admin_V3_ScopedRoutesConfigDump()),
            try Google_Protobuf_Any(message: routesDump),
            try Google_Protobuf_Any(message: secretsDump),
        ]
        if includeEDS {
            // Envoy puts endpoints after the clusters when asked with ?include_eds.
            dump.configs.insert(try Google_Protobuf_Any(message: endpointsDump), at: 2)
        }
        return JSONPrettyPrinter.format(try dump.jsonString(options: options))
    }

    /// A secret as `/config_dump` may show it: inline private keys replaced by `[redacted]`, as Envoy does.
    static func redacted(_ secret: SecretProto) -> SecretProto {
        var copy = secret
        if case .tlsCertificate(var certificate)? = copy.type {
            switch certificate.privateKey.specifier {
            case .inlineBytes?, .inlineString?: certificate.privateKey.inlineString = "[redacted]"
            default: break
            }
            copy.tlsCertificate = certificate
        }
        return copy
    }

    /// Envoy prints proto field names (`connect_timeout`), not lowerCamel JSON names.
    static var dumpEncoding: JSONEncodingOptions {
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        return options
    }

    /// The bootstrap with the node as meshproxy reports it to control planes.
    func bootstrapForDump() -> Envoy_Config_Bootstrap_V3_Bootstrap {
        var copy = bootstrap
        copy.node = node
        return copy
    }

    var node: Envoy_Config_Core_V3_Node {
        var node = bootstrap.node
        node.userAgentName = "meshproxy"
        var version = Envoy_Config_Core_V3_BuildVersion()
        version.version.majorNumber = 1
        version.version.minorNumber = 40
        version.version.patch = 0
        node.userAgentBuildVersion = version
        return node
    }

    public func serverInfoJSON() throws -> String {
        var info = Envoy_Admin_V3_ServerInfo()
        info.version = MeshproxyVersion.string
        info.state = switch state {
        case "LIVE": .live
        case "DRAINING": .draining
        case "PRE_INITIALIZING": .preInitializing
        default: .initializing
        }
        let uptime = Int64(Date().timeIntervalSince(startedAt))
        info.uptimeCurrentEpoch = Google_Protobuf_Duration(seconds: uptime)
        info.uptimeAllEpochs = Google_Protobuf_Duration(seconds: uptime)
        info.hotRestartVersion = "disabled"
        var options = Envoy_Admin_V3_CommandLineOptions()
        options.baseID = UInt64(self.options.baseID)
        options.concurrency = UInt32(self.options.concurrency)
        options.configPath = self.options.configPath ?? ""
        options.configYaml = self.options.configYAML ?? ""
        options.logLevel = self.options.logLevel
        options.serviceCluster = self.options.serviceCluster ?? ""
        options.serviceNode = self.options.serviceNode ?? ""
        options.serviceZone = self.options.serviceZone ?? ""
        options.drainTime = Google_Protobuf_Duration(seconds: Int64(self.options.drainTimeSeconds))
        options.mode = self.options.mode == .validate ? .validate : .serve
        options.disableHotRestart = true
        info.commandLineOptions = options
        info.node = node
        var json = try info.jsonString(options: Self.dumpEncoding)
        if info.state == .live {
            // proto3 JSON drops enum zero values; Envoy prints every field here, and tools read "state".
            let version = "\"version\":\"\(info.version)\","
            json = json.replacingOccurrences(of: version, with: version + "\"state\":\"LIVE\",")
        }
        return JSONPrettyPrinter.format(json)
    }
}

extension Server {
    /// Envoy's `/certs`: listeners' TLS contexts in config order, then clusters'.
    public func certsJSON() throws -> String {
        let view = config.view
        let listenerContexts = view.listeners.flatMap { listener in
            (listener.chains + (listener.defaultChain.map { [$0] } ?? [])).compactMap(\.currentTLS)
        }
        let clusterContexts = view.clusters.ordered.compactMap { $0.transportSocket?.context }
        return JSONPrettyPrinter.format(TLSContext.certsJSON(listenerContexts + clusterContexts))
    }
}

struct ConfigDumpError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}

/// meshproxy's version string, in Envoy's `<sha>/<version>/<status>/<build>/<ssl>` shape.
public enum MeshproxyVersion {
    public static let version = "0.1.0"
    public static let string = "swiftmesh/\(version)/Clean/RELEASE/SwiftNIO"
}

/// Re-indents compact JSON (keeping key order, which JSONSerialization would not).
enum JSONPrettyPrinter {
    static func format(_ json: String) -> String {
        var out = ""
        out.reserveCapacity(json.utf8.count * 2)
        var depth = 0
        var inString = false
        var escaped = false
        /// Set after `{` or `[`: the line break waits, so an empty container stays `[]` as Envoy prints it.
        var justOpened = false
        func newline() {
            out += "\n" + String(repeating: " ", count: depth)
        }
        for character in json {
            if inString {
                out.append(character)
                if escaped { escaped = false } else if character == "\\" { escaped = true } else if character == "\"" { inString = false }
                continue
            }
            if character == " " || character == "\n" || character == "\t" { continue }
            if justOpened {
                justOpened = false
                if character == "}" || character == "]" {
                    depth -= 1
                    out.append(character)
                    continue
                }
                newline()
            }
            switch character {
            case "\"":
                inString = true
                out.append(character)
            case "{", "[":
                out.append(character)
                depth += 1
                justOpened = true
            case "}", "]":
                depth -= 1
                newline()
                out.append(character)
            case ",":
                out.append(character)
                newline()
            case ":":
                out += ": "
            default:
                out.append(character)
            }
        }
        return out + "\n"
    }
}
