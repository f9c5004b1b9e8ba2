import SwiftProtobuf
import SwiftProtobufPluginLibrary
import Yams

/// Turns a YAML (or JSON) node tree into the proto3 JSON text of a given message type, checking it
/// against the Envoy descriptors on the way. Every error names the field path and the line.
///
/// Walking against the schema also fixes YAML's scalar typing: a string field takes `on`, `yes` or
/// `2024-01-01` as the text written, whatever YAML 1.1 would have made of it.
struct ProtoJSONTranscoder {
    let file: String
    let registry: AnyTypeRegistry
    private(set) var json = ""

    init(file: String, registry: AnyTypeRegistry) {
        self.file = file
        self.registry = registry
        json.reserveCapacity(4096)
    }

    func error(_ node: Node?, _ path: String, _ reason: String) -> ConfigError {
        ConfigError(file: file, line: node?.mark?.line, fieldPath: path, reason: reason)
    }

    // MARK: messages

    mutating func message(_ node: Node, _ descriptor: Descriptor, path: String) throws {
        if try wellKnown(node, descriptor, path: path) { return }
        guard case .mapping(let mapping) = node else {
            throw error(node, path, "expected a mapping for \(descriptor.fullName), got \(kind(of: node))")
        }
        json += "{"
        try fields(of: mapping, descriptor, path: path, first: true)
        json += "}"
    }

    /// Emits the fields of `mapping` (no braces), so Any can prepend its `@type`.
    private mutating func fields(of mapping: Node.Mapping, _ descriptor: Descriptor, path: String, first: Bool,
                                 skipping skippedKey: String? = nil) throws {
        var first = first
        var seenFields = Set<String>()
        var seenOneofs: [String: String] = [:]
        let extensionName = mapping["name"]?.scalar?.string
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                throw error(keyNode, path, "field names must be strings")
            }
            if key == skippedKey { continue }
            let fieldPath = path.isEmpty ? key : path + "." + key
            guard let field = descriptor.fields.first(where: { $0.name == key || jsonName(of: $0) == key }) else {
                throw error(keyNode, fieldPath, "unknown field \"\(key)\" in \(descriptor.fullName)")
            }
            let protoPath = path.isEmpty ? field.name : path + "." + field.name
            guard seenFields.insert(field.name).inserted else {
                throw error(keyNode, protoPath, "field given twice")
            }
            if isNull(value) { continue }
            if let oneof = field.realContainingOneof {
                if let other = seenOneofs[oneof.name] {
                    throw error(keyNode, protoPath, "only one of \(other) and \(field.name) may be set (oneof \(oneof.name))")
                }
                seenOneofs[oneof.name] = field.name
            }
            if !first { json += "," }
            first = false
            appendString(field.name)
            json += ":"
            try fieldValue(value, field, path: protoPath, extensionName: extensionName)
        }
    }

    private mutating func fieldValue(_ node: Node, _ field: FieldDescriptor, path: String, extensionName: String?) throws {
        if field.isMap {
            guard case .mapping(let mapping) = node else {
                throw error(node, path, "expected a mapping, got \(kind(of: node))")
            }
            let valueField = field.messageType.mapKeyAndValue!.value
            json += "{"
            var first = true
            for (key, value) in mapping {
                guard let keyText = key.scalar?.string else { throw error(key, path, "map keys must be scalars") }
                if !first { json += "," }
                first = false
                appendString(keyText)
                json += ":"
                try singular(value, valueField, path: "\(path)[\(keyText)]", extensionName: nil)
            }
            json += "}"
        } else if field.isRepeated {
            guard case .sequence(let sequence) = node else {
                throw error(node, path, "expected a list, got \(kind(of: node))")
            }
            json += "["
            for (index, element) in sequence.enumerated() {
                if index > 0 { json += "," }
                try singular(element, field, path: "\(path)[\(index)]", extensionName: nil)
            }
            json += "]"
        } else {
            try singular(node, field, path: path, extensionName: extensionName)
        }
    }

    private mutating func singular(_ node: Node, _ field: FieldDescriptor, path: String, extensionName: String?) throws {
        switch field.type {
        case .message, .group:
            if field.messageType.fullName == "google.protobuf.Any" {
                try any(node, path: path, extensionName: extensionName)
            } else {
                try message(node, field.messageType, path: path)
            }
        case .enum:
            try enumValue(node, field.enumType, path: path)
        default:
            try scalar(node, field.type, path: path)
        }
    }

    // MARK: Any

    mutating func any(_ node: Node, path: String, extensionName: String?) throws {
        guard case .mapping(let mapping) = node else {
            throw error(node, path, "expected a mapping with \"@type\", got \(kind(of: node))")
        }
        let url = mapping["@type"]?.scalar?.string ?? ""
        let messageName = TypeURL.messageName(of: url)
        guard !url.isEmpty, registry.contains(messageName: messageName),
              let descriptor = EnvoyDescriptors.message(named: messageName)
        else {
            throw error(node, path, "Didn't find a registered implementation for '\(extensionName ?? "")' with type URL: '\(url)'")
        }
        json += "{"
        appendString("@type")
        json += ":"
        appendString(url)
        if isWellKnownJSON(descriptor.fullName) {
            json += ",\"value\":"
            guard let value = mapping["value"] else { throw error(node, path, "missing \"value\" for \(messageName)") }
            try message(value, descriptor, path: path + ".value")
        } else {
            try fields(of: mapping, descriptor, path: path, first: false, skipping: "@type")
        }
        json += "}"
    }

    // MARK: well-known types

    private func isWellKnownJSON(_ fullName: String) -> Bool {
        fullName.hasPrefix("google.protobuf.") && fullName != "google.protobuf.Empty"
    }

    /// Emits the special JSON forms of google.protobuf types; false when `descriptor` is not one.
    private mutating func wellKnown(_ node: Node, _ descriptor: Descriptor, path: String) throws -> Bool {
        switch descriptor.fullName {
        case "google.protobuf.Duration":
            let text = try scalarText(node, path: path)
            guard Self.isDuration(text) else {
                throw error(node, path, "invalid duration \"\(text)\" (expected seconds with an \"s\" suffix, e.g. \"0.25s\")")
            }
            appendString(text)
        case "google.protobuf.Timestamp", "google.protobuf.FieldMask":
            appendString(try scalarText(node, path: path))
        case "google.protobuf.DoubleValue", "google.protobuf.FloatValue", "google.protobuf.Int64Value",
             "google.protobuf.UInt64Value", "google.protobuf.Int32Value", "google.protobuf.UInt32Value",
             "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue":
            try scalar(node, descriptor.fields[0].type, path: path)
        case "google.protobuf.Struct":
            guard case .mapping = node else { throw error(node, path, "expected a mapping, got \(kind(of: node))") }
            try CoreSchemaJSON.append(node, to: &json, strict: false)
        case "google.protobuf.ListValue":
            guard case .sequence = node else { throw error(node, path, "expected a list, got \(kind(of: node))") }
            try CoreSchemaJSON.append(node, to: &json, strict: false)
        case "google.protobuf.Value":
            try CoreSchemaJSON.append(node, to: &json, strict: false)
        case "google.protobuf.Any":
            try any(node, path: path, extensionName: nil)
        default:
            return false
        }
        return true
    }

    static func isDuration(_ text: String) -> Bool {
        guard text.hasSuffix("s") else { return false }
        var body = Substring(text.dropLast())
        if body.hasPrefix("-") { body = body.dropFirst() }
        let parts = body.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty else { return false }
        return parts.allSatisfy { $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) } && (parts.count == 1 || !parts[1].isEmpty)
    }

    // MARK: scalars

    private mutating func enumValue(_ node: Node, _ descriptor: EnumDescriptor, path: String) throws {
        let text = try scalarText(node, path: path)
        if let number = Int32(text), descriptor.values.contains(where: { $0.number == number }) {
            json += text
        } else if descriptor.values.contains(where: { $0.name == text }) {
            appendString(text)
        } else {
            throw error(node, path, "unknown enum value \"\(text)\" for \(descriptor.fullName)")
        }
    }

    private mutating func scalar(_ node: Node, _ type: Google_Protobuf_FieldDescriptorProto.TypeEnum, path: String) throws {
        let text = try scalarText(node, path: path)
        switch type {
        case .string, .bytes:
            appendString(text)
        case .bool:
            switch text {
            case "true", "True", "TRUE": json += "true"
            case "false", "False", "FALSE": json += "false"
            default: throw error(node, path, "invalid bool value \"\(text)\" (expected true or false)")
            }
        case .int32, .sint32, .sfixed32:
            guard Int32(text) != nil else { throw error(node, path, "invalid int32 value \"\(text)\"") }
            json += text
        case .uint32, .fixed32:
            guard UInt32(text) != nil else { throw error(node, path, "invalid uint32 value \"\(text)\"") }
            json += text
        case .int64, .sint64, .sfixed64:
            guard Int64(text) != nil else { throw error(node, path, "invalid int64 value \"\(text)\"") }
            appendString(text)
        case .uint64, .fixed64:
            guard UInt64(text) != nil else { throw error(node, path, "invalid uint64 value \"\(text)\"") }
            appendString(text)
        case .double, .float:
            switch text.lowercased() {
            case ".inf", "+.inf", "inf", "infinity": appendString("Infinity")
            case "-.inf", "-inf", "-infinity": appendString("-Infinity")
            case ".nan", "nan": appendString("NaN")
            default:
                guard Double(text) != nil else { throw error(node, path, "invalid number \"\(text)\"") }
                json += text.hasPrefix(".") ? "0" + text : text
            }
        default:
            throw error(node, path, "unsupported field type")
        }
    }

    private func scalarText(_ node: Node, path: String) throws -> String {
        guard case .scalar(let scalar) = node else {
            throw error(node, path, "expected a scalar value, got \(kind(of: node))")
        }
        return scalar.string
    }

    private func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain else { return false }
        return CoreSchemaJSON.isNullText(scalar.string)
    }

    private func kind(of node: Node) -> String {
        switch node {
        case .scalar(let scalar): return "scalar \"\(scalar.string)\""
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    private func jsonName(of field: FieldDescriptor) -> String {
        if let name = field.jsonName, !name.isEmpty { return name }
        var result = ""
        var upper = false
        for character in field.name {
            if character == "_" { upper = true; continue }
            result.append(upper ? Character(character.uppercased()) : character)
            upper = false
        }
        return result
    }

    private mutating func appendString(_ text: String) {
        JSONText.appendQuoted(text, to: &json)
    }
}
