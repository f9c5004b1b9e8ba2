/// An Envoy `StringMatcher` compiled on its own (RBAC's `url_path` and `principal_name`, stats
/// histogram settings), evaluated like a header matcher's.
public struct StringMatch: Sendable {
    let matcher: HeaderMatcher

    public init(_ rule: HeaderMatcher.Rule, ignoreCase: Bool = false) {
        matcher = HeaderMatcher(name: "", rule: rule, ignoreCase: ignoreCase)
    }

    public func matches(_ value: String) -> Bool { matcher.matches(value) }
}
