import SwiftProtobuf
import XDSResource

/// Compiles the `typed_per_filter_config` entries of virtual hosts and routes for the HTTP filters
/// that read them (a route's fault or rate limit, say). The filters themselves live above routing,
/// so whoever compiles a route table hands their compilers in.
public struct PerFilterConfigCompiler: Sendable {
    /// The compiled form of one entry, keyed by the filter's name; nil for a config no filter reads.
    public typealias Compile = @Sendable (_ filterName: String, _ config: Google_Protobuf_Any, _ path: String) throws
        -> (any Sendable)?

    let compile: Compile

    public init(_ compile: @escaping Compile) {
        self.compile = compile
    }

    /// For route tables compiled on their own (tests): entries are kept out, not refused.
    public static let ignoring = PerFilterConfigCompiler { _, _, _ in nil }

    /// Each entry compiled; `broader` (the virtual host's) is overridden by name, as Envoy's most specific config wins.
    func compileAll(_ configs: [String: Google_Protobuf_Any], path: String,
                    over broader: [String: any Sendable] = [:]) throws -> [String: any Sendable] {
        var result = broader
        for (name, config) in configs.sorted(by: { $0.key < $1.key }) {
            if let compiled = try compile(name, config, "\(path).typed_per_filter_config[\(name)]") {
                result[name] = compiled
            }
        }
        return result
    }
}
