import ProxyTLS
import Testing

@Suite struct SubjectAltNameMatcherTests {
    @Test func exactURI() {
        let matcher = SubjectAltNameMatcher(kind: .uri, rule: .exact("spiffe://cluster.local/ns/a/sa/b"))
        #expect(matcher.matches("spiffe://cluster.local/ns/a/sa/b"))
        #expect(!matcher.matches("spiffe://cluster.local/ns/a/sa/c"))
    }

    @Test func wildcardDNSCertificateMatchesOneLabel() {
        let matcher = SubjectAltNameMatcher(kind: .dns, rule: .exact("api.example.com"))
        #expect(matcher.matches("*.example.com"))
        #expect(!matcher.matches("*.other.com"))
        #expect(!SubjectAltNameMatcher(kind: .dns, rule: .exact("a.b.example.com")).matches("*.example.com"))
    }

    @Test func prefixSuffixContainsRegexAndCase() {
        #expect(SubjectAltNameMatcher(kind: .uri, rule: .prefix("spiffe://cluster.local/")).matches("spiffe://cluster.local/ns/x"))
        #expect(SubjectAltNameMatcher(kind: .dns, rule: .suffix(".internal")).matches("db.internal"))
        #expect(SubjectAltNameMatcher(kind: .dns, rule: .contains("mesh")).matches("a.mesh.local"))
        #expect(SubjectAltNameMatcher(kind: .uri, rule: .regex("spiffe://[^/]+/ns/prod/.*")).matches("spiffe://td/ns/prod/sa/x"))
        #expect(!SubjectAltNameMatcher(kind: .uri, rule: .regex("spiffe://[^/]+/ns/prod/.*")).matches("spiffe://td/ns/dev/sa/x"))
        #expect(SubjectAltNameMatcher(kind: .dns, rule: .exact("API.Example.com"), ignoreCase: true).matches("api.example.COM"))
    }
}
