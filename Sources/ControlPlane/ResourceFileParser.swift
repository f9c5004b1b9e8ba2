import SwiftProtobuf
import XDSResource
import Yams

/// Reads one resource file: a single resource (a mapping with `"@type"`), several YAML documents,
/// or a `resources:` list, the shape Envoy's filesystem subscriptions read.
public struct ResourceFileParser: Sendable {
    public let loader: ConfigLoader

    public init(loader: ConfigLoader = ConfigLoader(registry: .meshd)) {
        self.loader = loader
    }

    public func parse(_ text: String, file: String, scope: NodeScope) throws -> [VersionedResource] {
        var documents: [Node] = []
        do {
            // Parser.nextRoot, not compose_all: the latter's sequence stops quietly at a syntax error.
            let parser = try Parser(yaml: text, resolver: .basic)
            while let document = try parser.nextRoot() { documents.append(document) }
        } catch let error as YamlError {
            throw ConfigError(file: file, line: Self.line(of: error), reason: "invalid YAML: \(Self.problem(of: error))")
        }
        var resources: [VersionedResource] = []
        for document in documents {
            guard case .mapping(let mapping) = document else {
                if case .scalar(let scalar) = document, ["", "~", "null"].contains(scalar.string) { continue }
                throw ConfigError(file: file, line: document.mark?.line,
                                  reason: "expected a resource with \"@type\" or a \"resources\" list")
            }
            if mapping["@type"] != nil {
                resources.append(try resource(document, file: file, path: "", scope: scope))
                continue
            }
            for (key, _) in mapping {
                let name = key.scalar?.string ?? ""
                guard name == "resources" || name == "version_info" else {
                    throw ConfigError(file: file, line: key.mark?.line, fieldPath: name,
                                      reason: "unknown key \"\(name)\" (expected \"@type\", \"resources\" or \"version_info\")")
                }
            }
            guard case .sequence(let list)? = mapping["resources"] else {
                throw ConfigError(file: file, line: document.mark?.line, fieldPath: "resources",
                                  reason: "expected a list of resources")
            }
            for (index, element) in list.enumerated() {
                resources.append(try resource(element, file: file, path: "resources[\(index)]", scope: scope))
            }
        }
        return resources
    }

    private func resource(_ node: Node, file: String, path: String, scope: NodeScope) throws -> VersionedResource {
        let url = node.mapping?["@type"]?.scalar?.string ?? ""
        guard let type = ResourceType(typeURL: url) else {
            throw ConfigError(file: file, line: node.mark?.line, fieldPath: path.isEmpty ? "@type" : path + ".@type",
                              reason: "\"\(url)\" is not an xDS resource type meshd serves (Listener, RouteConfiguration, "
                                  + "Cluster, ClusterLoadAssignment, Secret)")
        }
        let message = try loader.decodeAny(node: node, file: file, path: path)
        guard let name = ResourceType.name(of: message), !name.isEmpty else {
            let field = type == .endpoint ? "cluster_name" : "name"
            throw ConfigError(file: file, line: node.mark?.line, fieldPath: path.isEmpty ? field : path + "." + field,
                              reason: "a \(type.shortName) resource needs a \(field)")
        }
        let (packed, version) = try ContentHash.packed(message)
        return VersionedResource(typeURL: type.typeURL, name: name, version: version, resource: packed, file: file,
                                 line: node.mark?.line, scope: scope)
    }

    static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): mark.line
        default: nil
        }
    }

    static func problem(of error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _): problem
        default: "\(error)"
        }
    }
}
