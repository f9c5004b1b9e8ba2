/// How a route selects requests: a path rule, and optionally header conditions.
public struct RouteMatch: Sendable {
    public enum PathRule: Sendable {
        case prefix(String)
        case path(String)
        case regex(CompiledRegex)
        /// `path_separated_prefix`: the prefix, followed by the end of the path, `/`, `?` or `#`.
        case separatedPrefix(String)
    }

    public var path: PathRule
    public var caseSensitive: Bool
    public var headers: [HeaderMatcher]

    public init(path: PathRule, caseSensitive: Bool = true, headers: [HeaderMatcher] = []) {
        self.path = path
        self.caseSensitive = caseSensitive
        self.headers = headers
    }

    /// - Parameters:
    ///   - path: the request path without the query string.
    ///   - header: looks up a request header by lower-case name.
    public func matches(path requestPath: Substring, header: (String) -> String?) -> Bool {
        guard pathMatches(requestPath) else { return false }
        return headers.allSatisfy { $0.matches(header($0.name)) }
    }

    private func pathMatches(_ requestPath: Substring) -> Bool {
        switch path {
        case .prefix(let prefix):
            return caseSensitive ? requestPath.hasPrefix(prefix) : requestPath.lowercased().hasPrefix(prefix.lowercased())
        case .path(let exact):
            return caseSensitive ? requestPath == exact : requestPath.lowercased() == exact.lowercased()
        case .regex(let regex):
            return regex.wholeMatches(requestPath)
        case .separatedPrefix(let prefix):
            guard requestPath.hasPrefix(prefix) else { return false }
            let rest = requestPath.dropFirst(prefix.count)
            return rest.isEmpty || rest.first == "/"
        }
    }
}

/// One `headers` condition of a route match.
public struct HeaderMatcher: Sendable {
    public enum Rule: Sendable {
        case present(Bool)
        case exact(String)
        case prefix(String)
        case suffix(String)
        case contains(String)
        case regex(CompiledRegex)
    }

    public var name: String
    public var rule: Rule
    public var invert: Bool

    public init(name: String, rule: Rule, invert: Bool = false) {
        self.name = name.lowercased()
        self.rule = rule
        self.invert = invert
    }

    func matches(_ value: String?) -> Bool {
        let result: Bool
        switch rule {
        case .present(let present): result = (value != nil) == present
        case .exact(let text): result = value == text
        case .prefix(let text): result = value?.hasPrefix(text) ?? false
        case .suffix(let text): result = value?.hasSuffix(text) ?? false
        case .contains(let text): result = value?.contains(text) ?? false
        case .regex(let regex): result = value.map { regex.wholeMatches(Substring($0)) } ?? false
        }
        return result != invert
    }
}

/// A regular expression matched against a whole value, as Envoy's `safe_regex` (RE2) is.
public struct CompiledRegex: @unchecked Sendable {
    // Regex values are immutable once built; Regex is not yet marked Sendable on every toolchain.
    private let regex: Regex<AnyRegexOutput>
    public let pattern: String

    public init(_ pattern: String) throws {
        self.regex = try Regex(pattern)
        self.pattern = pattern
    }

    public func wholeMatches(_ text: Substring) -> Bool {
        (try? regex.wholeMatch(in: text)) != nil
    }
}
