import Yams

/// YAML to JSON with YAML 1.2 core-schema typing, for where no schema says what a scalar is: the values of
/// `google.protobuf.Struct`, and the loader's fast path, which hands the result straight to swift-protobuf's
/// JSON decoder.
enum CoreSchemaJSON {
    /// Thrown in strict mode for input whose plain translation might not mean what the schema-checked one would.
    struct Unsure: Error {}

    /// Appends `node` as JSON. Strict mode refuses (with `Unsure`) what swift-protobuf might read otherwise than
    /// the schema-checked walk: aliases, keys that are not scalars, a key given twice in one mapping (also as
    /// `a_b` beside `aB`, a field named both ways), null values, and numbers that are not integers.
    static func append(_ node: Node, to json: inout String, strict: Bool) throws {
        switch node {
        case .scalar(let scalar):
            // swift-protobuf takes 80.0 or 1e2 for an integer field, which the checked walk refuses.
            if strict, scalar.style == .plain, isNumber(scalar.string), !isInteger(scalar.string) { throw Unsure() }
            appendScalar(scalar, to: &json)
        case .mapping(let mapping):
            json += "{"
            var seen = strict ? Set<String>(minimumCapacity: mapping.count) : []
            for (index, (key, value)) in mapping.enumerated() {
                if index > 0 { json += "," }
                guard let keyText = key.scalar?.string else {
                    if strict { throw Unsure() }
                    json += "\"\":"
                    try append(value, to: &json, strict: strict)
                    continue
                }
                if strict, !seen.insert(fieldSpelling(keyText)).inserted { throw Unsure() }
                // The checked walk leaves a null field unset; swift-protobuf makes a Value field's null a NullValue.
                if strict, case .scalar(let scalar) = value, scalar.style == .plain, isNullText(scalar.string) {
                    throw Unsure()
                }
                JSONText.appendQuoted(keyText, to: &json)
                json += ":"
                try append(value, to: &json, strict: strict)
            }
            json += "}"
        case .sequence(let sequence):
            json += "["
            for (index, element) in sequence.enumerated() {
                if index > 0 { json += "," }
                try append(element, to: &json, strict: strict)
            }
            json += "]"
        case .alias:
            if strict { throw Unsure() }
            json += "null"
        }
    }

    /// Plain scalars are null, booleans and numbers as the core schema reads them; everything else is a string.
    private static func appendScalar(_ scalar: Node.Scalar, to json: inout String) {
        let text = scalar.string
        guard scalar.style == .plain else { return JSONText.appendQuoted(text, to: &json) }
        if isNullText(text) { json += "null" }
        else if text == "true" || text == "True" || text == "TRUE" { json += "true" }
        else if text == "false" || text == "False" || text == "FALSE" { json += "false" }
        else if isNumber(text) { json += text }
        else { JSONText.appendQuoted(text, to: &json) }
    }

    static func isNullText(_ text: String) -> Bool {
        text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    private static func isNumber(_ text: String) -> Bool {
        Double(text) != nil && text.first != "+" && !text.hasPrefix(".")
            && text.lowercased() != "nan" && !text.lowercased().contains("inf")
    }

    private static func isInteger(_ text: String) -> Bool {
        let digits = text.utf8.first == UInt8(ascii: "-") ? text.utf8.dropFirst() : text.utf8[...]
        return !digits.isEmpty && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    /// One spelling for a field's proto name and its JSON name (`stat_prefix`, `statPrefix`).
    private static func fieldSpelling(_ key: String) -> String {
        String(key.lowercased().filter { $0 != "_" })
    }
}
