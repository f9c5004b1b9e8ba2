import Foundation
import SwiftProtobuf
import Yams

/// Loads Envoy v3 config (bootstrap or resources) from YAML or JSON text into generated messages.
public struct ConfigLoader: Sendable {
    public var registry: AnyTypeRegistry
    /// Always takes the checked walk (no direct decoding), so tests can compare the two ways.
    var walksOnly = false

    public init(registry: AnyTypeRegistry = .meshproxy) {
        self.registry = registry
    }

    /// Reads and decodes a whole file as one message of type `M` (a bootstrap, say).
    public func load<M: Message>(_ type: M.Type, path: String) throws -> M {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, reason: "cannot read file: \(error.localizedDescription)")
        }
        return try decode(type, yaml: text, file: path)
    }

    /// Decodes YAML or JSON text as one message of type `M`; `file` names the source in errors.
    public func decode<M: Message>(_ type: M.Type, yaml text: String, file: String) throws -> M {
        let node: Node?
        do {
            // No tag resolution: the walk types scalars by the schema (or the core schema where there is none),
            // and Yams' default resolver compiles and runs a set of regular expressions for every scalar.
            node = try Yams.compose(yaml: text, .basic)
        } catch let error as YamlError {
            throw ConfigError(file: file, line: Self.line(of: error), reason: "invalid YAML: \(Self.describe(error))")
        } catch {
            throw ConfigError(file: file, reason: "invalid YAML: \(error)")
        }
        guard let node else { throw ConfigError(file: file, reason: "the file is empty") }
        return try decode(type, node: node, file: file)
    }

    /// Decodes one YAML node as `M`: directly when that is certain to give what the checked walk would, else
    /// checked against the Envoy descriptors, which names the line and field of any error.
    public func decode<M: Message>(_ type: M.Type, node: Node, file: String, path: String = "") throws -> M {
        if !walksOnly, let message = decodedDirectly(type, node: node) { return message }
        guard let descriptor = EnvoyDescriptors.message(named: M.protoMessageName) else {
            throw ConfigError(file: file, reason: "\(M.protoMessageName) is not part of the generated Envoy API")
        }
        var transcoder = ProtoJSONTranscoder(file: file, registry: registry)
        try transcoder.message(node, descriptor, path: path)
        do {
            let message = try M(jsonString: transcoder.json)
            // Any payloads decode lazily in swift-protobuf; serialising forces every one of them now,
            // so a bad typed_config fails here rather than when the proxy first reads it.
            _ = try message.serializedBytes() as [UInt8]
            return message
        } catch {
            throw ConfigError(file: file, line: node.mark?.line, fieldPath: path,
                              reason: "invalid \(M.protoMessageName): \(error)")
        }
    }

    /// The fast path: the node as core-schema JSON straight into swift-protobuf's decoder, then the checks that
    /// decoder does not make. Anything it is unsure of or fails on goes the checked way. Building the descriptors
    /// for that walk was about half of meshproxy's start-up CPU, and a good file never needs them.
    func decodedDirectly<M: Message>(_ type: M.Type, node: Node) -> M? {
        var json = ""
        json.reserveCapacity(4096)
        guard (try? CoreSchemaJSON.append(node, to: &json, strict: true)) != nil,
              let message = try? M(jsonString: json),
              (try? DecodedMessageCheck.check(message, registry: registry)) != nil
        else { return nil }
        return message
    }

    /// Decodes a mapping carrying `"@type"` into the registered message it names.
    public func decodeAny(node: Node, file: String, path: String = "") throws -> any Message {
        let url = node.mapping?["@type"]?.scalar?.string ?? ""
        guard let type = registry.type(forMessageName: TypeURL.messageName(of: url)) else {
            throw ConfigError(file: file, line: node.mark?.line, fieldPath: path,
                              reason: "Didn't find a registered implementation for '' with type URL: '\(url)'")
        }
        var stripped = node.mapping!
        stripped["@type"] = nil
        return try decodeErased(type, node: .mapping(stripped), file: file, path: path)
    }

    private func decodeErased<M: Message>(_ type: M.Type, node: Node, file: String, path: String) throws -> any Message {
        try decode(type, node: node, file: file, path: path)
    }

    private static func line(of error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _):
            return mark.line
        default:
            return nil
        }
    }

    private static func describe(_ error: YamlError) -> String {
        switch error {
        case .scanner(_, let problem, _, _), .parser(_, let problem, _, _), .composer(_, let problem, _, _):
            return problem
        default:
            return "\(error)"
        }
    }
}
