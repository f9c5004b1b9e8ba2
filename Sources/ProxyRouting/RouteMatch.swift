/// How a route selects requests: a path rule, and optionally header, query parameter and
/// runtime-fraction conditions.
public struct RouteMatch: Sendable {
    public enum PathRule: Sendable {
        case prefix(String)
        case path(String)
        case regex(CompiledRegex)
        /// `path_separated_prefix`: the prefix, followed by the end of the path, `/`, `?` or `#`.
        case separatedPrefix(String)
        /// `connect_matcher`: CONNECT requests (and only they), whatever their target.
        case connect
    }

    public var path: PathRule
    public var caseSensitive: Bool
    public var headers: [HeaderMatcher]
    /// `query_parameters`: the same rules, applied to the first value of each named parameter.
    public var queryParameters: [HeaderMatcher]
    /// `runtime_fraction`: the share of matching requests this route takes, as numerator/denominator.
    public var fraction: (numerator: UInt64, denominator: UInt64)?

    public init(path: PathRule, caseSensitive: Bool = true, headers: [HeaderMatcher] = [],
                queryParameters: [HeaderMatcher] = [], fraction: (numerator: UInt64, denominator: UInt64)? = nil) {
        self.path = path
        self.caseSensitive = caseSensitive
        self.headers = headers
        self.queryParameters = queryParameters
        self.fraction = fraction
    }

    /// - Parameters:
    ///   - path: the request path without the query string.
    ///   - query: what follows the `?`, if anything.
    ///   - header: looks up a request header by lower-case name (`:method` too).
    ///   - random: draws for `runtime_fraction`.
    public func matches(path requestPath: Substring, query: Substring? = nil, header: (String) -> String?,
                        random: () -> UInt64 = { 0 }) -> Bool {
        if case .connect = path {
            guard header(":method") == "CONNECT" else { return false }
        } else {
            guard pathMatches(requestPath) else { return false }
        }
        guard headers.allSatisfy({ $0.matches(header($0.name)) }) else { return false }
        if !queryParameters.isEmpty {
            guard queryParameters.allSatisfy({ $0.matches(Self.parameter($0.name, in: query)) }) else { return false }
        }
        if let fraction {
            guard sampled(fraction, random: random) else { return false }
        }
        return true
    }

    /// The first value of a query parameter (`""` for a bare `name`), without decoding.
    static func parameter(_ name: String, in query: Substring?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts[0] == name { return parts.count > 1 ? String(parts[1]) : "" }
        }
        return nil
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
        case .connect:
            return false
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
        /// `range_match`: an integer in [start, end).
        case range(Int64, Int64)
    }

    public var name: String
    public var rule: Rule
    public var invert: Bool
    /// `ignore_case` of a string matcher: exact, prefix, suffix and contains compare case-insensitively.
    public var ignoreCase: Bool

    public init(name: String, rule: Rule, invert: Bool = false, ignoreCase: Bool = false, keepNameCase: Bool = false) {
        self.name = keepNameCase ? name : name.lowercased()
        self.rule = ignoreCase ? Self.lowered(rule) : rule
        self.invert = invert
        self.ignoreCase = ignoreCase
    }

    private static func lowered(_ rule: Rule) -> Rule {
        switch rule {
        case .exact(let text): .exact(text.lowercased())
        case .prefix(let text): .prefix(text.lowercased())
        case .suffix(let text): .suffix(text.lowercased())
        case .contains(let text): .contains(text.lowercased())
        default: rule
        }
    }

    public func matches(_ raw: String?) -> Bool {
        let value = ignoreCase ? raw?.lowercased() : raw
        let result: Bool
        switch rule {
        case .present(let present): result = (value != nil) == present
        case .exact(let text): result = value == text
        case .prefix(let text): result = value?.hasPrefix(text) ?? false
        case .suffix(let text): result = value?.hasSuffix(text) ?? false
        case .contains(let text): result = value?.contains(text) ?? false
        case .regex(let regex): result = value.map { regex.wholeMatches(Substring($0)) } ?? false
        case .range(let start, let end): result = value.flatMap { Int64($0) }.map { $0 >= start && $0 < end } ?? false
        }
        return result != invert
    }
}

/// A regular expression matched against a whole value, as Envoy's `safe_regex` (RE2) is.
///
/// A class, not a struct: `Regex` is a resilient type of the standard library, whose size is known only
/// at run time, and a struct holding one would make every route, matcher and retry policy that holds it
/// one too: each copy of those then went through value witnesses and a generic metadata lookup, several
/// times per proxied request. A reference keeps them plain, fixed-size values.
public final class CompiledRegex: @unchecked Sendable {
    // Immutable once built; Regex is not yet marked Sendable on every toolchain.
    private let regex: Regex<AnyRegexOutput>
    public let pattern: String

    public init(_ pattern: String) throws {
        self.regex = try Regex(pattern)
        self.pattern = pattern
    }

    public func wholeMatches(_ text: Substring) -> Bool {
        (try? regex.wholeMatch(in: text)) != nil
    }

    /// The first match's capture groups (0 is the whole match; nil for a group that took no part),
    /// or nil when nothing matches.
    public func firstMatchGroups(in text: String) -> [Substring?]? {
        guard let match = try? regex.firstMatch(in: text) else { return nil }
        return (0..<match.output.count).map { match.output[$0].substring }
    }

    /// Every match replaced by `substitution`, where `\N` stands for capture group N (RE2's rule).
    public func replacingAll(in text: String, with substitution: String) -> String {
        var out = ""
        var rest = text[...]
        for match in text.matches(of: regex) {
            out += text[rest.startIndex..<match.range.lowerBound]
            var characters = substitution[...]
            while let first = characters.first {
                characters = characters.dropFirst()
                if first == "\\", let digit = characters.first?.wholeNumberValue {
                    characters = characters.dropFirst()
                    if digit < match.output.count, let group = match.output[digit].substring { out += group }
                } else {
                    out.append(first)
                }
            }
            rest = text[match.range.upperBound...]
        }
        return out + rest
    }
}
