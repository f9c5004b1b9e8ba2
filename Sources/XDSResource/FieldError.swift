/// A resource that decoded but cannot be served, with the field path of the offending part
/// (`virtual_hosts[0].routes[1].match.safe_regex.regex`). Compilers of routes, clusters and
/// listeners throw it; callers prefix the path with where the resource sits.
public struct FieldError: Error, Sendable, CustomStringConvertible {
    public var fieldPath: String
    public var reason: String

    public init(_ fieldPath: String, _ reason: String) {
        self.fieldPath = fieldPath
        self.reason = reason
    }

    public var description: String { "\(fieldPath): \(reason)" }
}
