import SwiftProtobuf
import XDSAPI
import XDSResource

/// Reads the bootstrap as Envoy does: the `-c` file, with `--config-yaml` merged over it, and the
/// node overridden by `--service-node` / `--service-cluster` / `--service-zone`.
public enum BootstrapLoader {
    public static func load(_ options: ServerOptions, loader: ConfigLoader = ConfigLoader()) throws
        -> Envoy_Config_Bootstrap_V3_Bootstrap
    {
        var bootstrap = Envoy_Config_Bootstrap_V3_Bootstrap()
        var any = false
        if let path = options.configPath {
            bootstrap = try loader.load(Envoy_Config_Bootstrap_V3_Bootstrap.self, path: path)
            any = true
        }
        if let yaml = options.configYAML {
            let overlay = try loader.decode(Envoy_Config_Bootstrap_V3_Bootstrap.self, yaml: yaml, file: "--config-yaml")
            // Concatenated encodings decode as a proto merge, Envoy's semantics for --config-yaml.
            let merged: [UInt8] = try bootstrap.serializedBytes() + overlay.serializedBytes()
            bootstrap = try Envoy_Config_Bootstrap_V3_Bootstrap(serializedBytes: merged)
            any = true
        }
        guard any else {
            throw ConfigError(file: "<command line>", reason: "At least one of --config-path or --config-yaml should be non-empty")
        }
        if let node = options.serviceNode { bootstrap.node.id = node }
        if let cluster = options.serviceCluster { bootstrap.node.cluster = cluster }
        if let zone = options.serviceZone { bootstrap.node.locality.zone = zone }
        return bootstrap
    }
}
