/// A configuration error located as precisely as the input allows: file, line, and the field path
/// in proto field names (`static_resources.clusters[0].lb_policy`).
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var fieldPath: String
    public var reason: String

    public init(file: String, line: Int? = nil, fieldPath: String = "", reason: String) {
        self.file = file
        self.line = line
        self.fieldPath = fieldPath
        self.reason = reason
    }

    /// `FILE[:LINE]: [PATH: ]REASON`, the form editors and CI logs can jump to.
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if !fieldPath.isEmpty { text += fieldPath + ": " }
        return text + reason
    }
}
