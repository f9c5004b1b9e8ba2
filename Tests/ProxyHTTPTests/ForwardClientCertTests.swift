import ProxyCore
import Testing
@testable import ProxyHTTP

@Suite struct ForwardClientCertTests {
    let mutual = DownstreamTLSInfo(version: "TLSv1.3", peerURISANs: ["spiffe://td/ns/a/sa/b"], peerDNSSANs: ["b.local"],
                                   peerSubject: "CN=b,O=x", peerFingerprint256: "ab12", peerCertificatePEM: "-----BEGIN X-----\n",
                                   localURISANs: ["spiffe://td/ns/a/sa/me"])
    let serverOnly = DownstreamTLSInfo(version: "TLSv1.3")

    @Test func sanitizeUnlessTheClientIsMutualTLS() {
        for mode in [ForwardClientCert.Mode.forwardOnly, .appendForward, .sanitizeSet] {
            let config = ForwardClientCert(mode: mode)
            #expect(config.action(tls: nil) == .remove)
            #expect(config.action(tls: serverOnly) == .remove)
        }
        #expect(ForwardClientCert(mode: .sanitize).action(tls: mutual) == .remove)
        #expect(ForwardClientCert(mode: .alwaysForwardOnly).action(tls: nil) == .keep)
        #expect(ForwardClientCert(mode: .forwardOnly).action(tls: mutual) == .keep)
    }

    @Test func elementInEnvoysOrder() {
        let details = ForwardClientCert.Details(subject: true, cert: true, dns: true, uri: true)
        let config = ForwardClientCert(mode: .sanitizeSet, details: details)
        #expect(config.action(tls: mutual) == .replace(
            "By=spiffe://td/ns/a/sa/me;Hash=ab12;Cert=\"-----BEGIN%20X-----%0A\";Subject=\"CN=b,O=x\";"
                + "URI=spiffe://td/ns/a/sa/b;DNS=b.local"))
        #expect(ForwardClientCert(mode: .appendForward).action(tls: mutual) == .append("By=spiffe://td/ns/a/sa/me;Hash=ab12"))
    }
}
