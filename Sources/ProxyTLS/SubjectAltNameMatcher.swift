import Foundation
import XDSAPI
import XDSResource

/// One `match_typed_subject_alt_names` entry: a SAN type and a string matcher. A peer certificate
/// passes when any of its SANs of that type matches any entry.
public struct SubjectAltNameMatcher: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case dns, uri, email, ipAddress }
    public enum Rule: Sendable, Equatable {
        case exact(String), prefix(String), suffix(String), contains(String), regex(String)
    }

    public var kind: Kind
    public var rule: Rule
    public var ignoreCase: Bool

    public init(kind: Kind, rule: Rule, ignoreCase: Bool = false) {
        self.kind = kind
        self.rule = rule
        self.ignoreCase = ignoreCase
    }

    init(_ proto: Envoy_Extensions_TransportSockets_Tls_V3_SubjectAltNameMatcher, path: String) throws {
        switch proto.sanType {
        case .dns: kind = .dns
        case .uri: kind = .uri
        case .email: kind = .email
        case .ipAddress: kind = .ipAddress
        default: throw FieldError(path + ".san_type", "san_type must be DNS, URI, EMAIL or IP_ADDRESS")
        }
        (rule, ignoreCase) = try Self.rule(proto.matcher, path: path + ".matcher")
    }

    static func rule(_ matcher: Envoy_Type_Matcher_V3_StringMatcher, path: String) throws -> (Rule, Bool) {
        switch matcher.matchPattern {
        case .exact(let text): return (.exact(text), matcher.ignoreCase)
        case .prefix(let text): return (.prefix(text), matcher.ignoreCase)
        case .suffix(let text): return (.suffix(text), matcher.ignoreCase)
        case .contains(let text): return (.contains(text), matcher.ignoreCase)
        case .safeRegex(let regex):
            guard (try? Regex(regex.regex)) != nil else {
                throw FieldError(path + ".safe_regex", "invalid regex \"\(regex.regex)\"")
            }
            return (.regex(regex.regex), false)
        case .custom, nil: throw FieldError(path, "unsupported string matcher")
        }
    }

    /// Whether `name` (a SAN of this matcher's kind) matches. DNS exact matches follow Envoy: a
    /// wildcard SAN `*.example.com` matches one label in its place.
    public func matches(_ name: String) -> Bool {
        let value = ignoreCase ? name.lowercased() : name
        func fold(_ text: String) -> String { ignoreCase ? text.lowercased() : text }
        switch rule {
        case .exact(let text):
            if value == fold(text) { return true }
            if kind == .dns, value.hasPrefix("*."), let dot = fold(text).firstIndex(of: ".") {
                return fold(text)[dot...] == value.dropFirst()
            }
            return false
        case .prefix(let text): return value.hasPrefix(fold(text))
        case .suffix(let text): return value.hasSuffix(fold(text))
        case .contains(let text): return value.contains(fold(text))
        case .regex(let pattern):
            guard let regex = try? Regex(pattern) else { return false }
            return (try? regex.wholeMatch(in: name)) != nil
        }
    }
}
