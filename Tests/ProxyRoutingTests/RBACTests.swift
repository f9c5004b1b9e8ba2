import ProxyCore
import Testing
@testable import ProxyRouting

@Suite struct RBACTests {
    func request(path: String = "/api/x", method: String = "GET", remote: String = "127.0.0.1", peer: [String] = [],
                 dns: [String] = [], subject: String = "") -> RBACRequest {
        let tls = DownstreamTLSInfo(version: "TLSv1.3", peerURISANs: peer, peerDNSSANs: dns, peerSubject: subject,
                                    peerFingerprint256: peer.isEmpty && dns.isEmpty && subject.isEmpty ? "" : "ff")
        return RBACRequest(path: Substring(path), header: { $0 == ":method" ? method : nil },
                           directRemoteIP: CIDRRange.parse(remote), localIP: CIDRRange.parse("127.0.0.1"), localPort: 8443,
                           tls: tls)
    }

    let reads = RBACPolicy(
        name: "reads",
        permissions: [.and([.header(HeaderMatcher(name: ":method", rule: .exact("GET"))), .urlPath(StringMatch(.prefix("/api/")))])],
        principals: [.authenticated(StringMatch(.exact("spiffe://td/ns/a/sa/web")))])

    @Test func allowNeedsAMatchingPolicy() {
        let rules = RBACRules(action: .allow, policies: [reads])
        #expect(rules.evaluate(request(peer: ["spiffe://td/ns/a/sa/web"])) == (true, "reads"))
        #expect(rules.evaluate(request(method: "POST", peer: ["spiffe://td/ns/a/sa/web"])).allowed == false)
        #expect(rules.evaluate(request(peer: ["spiffe://td/ns/a/sa/other"])).allowed == false)
        #expect(rules.evaluate(request()).allowed == false, "no client certificate, not authenticated")
    }

    @Test func denyStopsWhatMatches() {
        let rules = RBACRules(action: .deny, policies: [
            RBACPolicy(name: "outside", permissions: [.any],
                       principals: [.not(.directRemoteIP(CIDRRange(address: "10.0.0.0", prefixLength: 8)!))]),
        ])
        #expect(rules.evaluate(request(remote: "10.1.2.3")) == (true, nil))
        #expect(rules.evaluate(request(remote: "192.168.1.1")) == (false, "outside"))
    }

    @Test func principalNameFallsBackFromURIToDNSToSubject() {
        let byName = RBACPrincipal.authenticated(StringMatch(.suffix(".example.com")))
        #expect(byName.matches(request(dns: ["api.example.com"])))
        #expect(!byName.matches(request(peer: ["spiffe://x"], dns: ["api.example.com"])), "URI SANs come first")
        #expect(RBACPrincipal.authenticated(StringMatch(.prefix("CN=svc"))).matches(request(subject: "CN=svc,O=x")))
        #expect(RBACPrincipal.authenticated(nil).matches(request(subject: "CN=any")))
    }

    @Test func policiesAreReportedInNameOrder() {
        let any = [RBACPermission.any]
        let rules = RBACRules(action: .allow, policies: [
            RBACPolicy(name: "zeta", permissions: any, principals: [.any]),
            RBACPolicy(name: "alpha", permissions: any, principals: [.any]),
        ])
        #expect(rules.evaluate(request()).policy == "alpha")
    }
}
