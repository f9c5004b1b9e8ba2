import Foundation
import MeshCA
import SwiftASN1
import Testing
import X509

/// Lets the verifier accept the critical SAN extension of SPIFFE certificates, which it then checks.
struct SPIFFEPolicy: VerifierPolicy {
    let uri: String
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.subjectAlternativeName]

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        let names = (try? chain.leaf.extensions.subjectAlternativeNames).map(Array.init) ?? []
        return names == [.uniformResourceIdentifier(uri)] ? .meetsPolicy : .failsToMeetPolicy(reason: "SAN is \(names)")
    }
}

@Suite struct CertificateAuthorityTests {
    let identity = SPIFFEID(trustDomain: "cluster.local", namespace: "shop", serviceAccount: "cart")
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func verify(_ issued: IssuedCertificate, by ca: CertificateAuthority, at time: Date) async throws -> Bool {
        try await verify(pem: issued.certificateChainPEM, by: ca, at: time)
    }

    func verify(pem: String, by ca: CertificateAuthority, at time: Date) async throws -> Bool {
        let leaf = try Certificate(pemEncoded: pem)
        var verifier = Verifier(rootCertificates: CertificateStore([ca.rootCertificate])) {
            RFC5280Policy(fixedValidationTime: time)
            SPIFFEPolicy(uri: identity.uri)
        }
        if case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore()) { return true }
        return false
    }

    @Test func issuedCertificatesChainToTheRootWithTheSPIFFEID() async throws {
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: now)
        let issued = try ca.issue(for: identity, ttl: 3600, now: now)
        #expect(issued.identity.uri == "spiffe://cluster.local/ns/shop/sa/cart")
        #expect(try await verify(issued, by: ca, at: now.addingTimeInterval(60)))
        // Expired after its TTL; not valid under another root.
        #expect(try await !verify(issued, by: ca, at: now.addingTimeInterval(3601)))
        let other = try CertificateAuthority(trustDomain: "cluster.local", now: now)
        #expect(try await !verify(issued, by: other, at: now.addingTimeInterval(60)))
        let leaf = try Certificate(pemEncoded: issued.certificateChainPEM)
        #expect(leaf.notValidAfter == Date(timeIntervalSince1970: now.timeIntervalSince1970 + 3600))
        #expect(try leaf.extensions.basicConstraints == .notCertificateAuthority)
    }

    /// meshd keeps one issued certificate for every proxy: its DER is held in storage of about its own
    /// length, not in the serializer's kilobyte.
    @Test func theKeptDERTakesAboutItsLength() throws {
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: now)
        let issued = try ca.issue(for: identity, ttl: 3600, now: now)
        #expect(issued.certificateDER.count > 300)
        #expect(issued.certificateDER.capacity - issued.certificateDER.count < 64)
        #expect(try Certificate(derEncoded: issued.certificateDER).serialNumber.description == issued.serialNumber)
    }

    /// Issued certificates are kept as DER and the raw key; the PEM made from them is what a proxy
    /// loads: the key is the certificate's, the serial is the certificate's.
    @Test func theKeptCertificateAndKeyComeBackAsPEM() throws {
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: now)
        let issued = try ca.issue(for: identity, ttl: 3600, now: now)
        #expect(issued.certificateChainPEM.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
        #expect(issued.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        let leaf = try Certificate(pemEncoded: issued.certificateChainPEM)
        let key = try Certificate.PrivateKey(pemEncoded: issued.privateKeyPEM)
        #expect(key.publicKey == leaf.publicKey)
        #expect(issued.serialNumber == leaf.serialNumber.description)
        #expect(issued.serialNumber.count > 20)
    }

    @Test func renewalIsDueAtHalfLife() throws {
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: now)
        let issued = try ca.issue(for: identity, ttl: 86_400, now: now)
        #expect(issued.renewAt == now.addingTimeInterval(43_200))
    }

    @Test func aRootRoundTripsThroughPEM() async throws {
        let ca = try CertificateAuthority(trustDomain: "example.org", now: now)
        let loaded = try CertificateAuthority(certificatePEM: ca.rootCertificatePEM, keyPEM: ca.rootKeyPEM)
        #expect(loaded.rootCertificate == ca.rootCertificate)
        #expect(try await verify(try loaded.issue(for: identity, ttl: 600, now: now), by: ca, at: now))
    }

    @Test func aKeyOfAnotherRootIsRefused() throws {
        let first = try CertificateAuthority(trustDomain: "a", now: now)
        let second = try CertificateAuthority(trustDomain: "b", now: now)
        #expect(throws: CAError.self) {
            try CertificateAuthority(certificatePEM: first.rootCertificatePEM, keyPEM: second.rootKeyPEM)
        }
    }

    @Test func malformedIdentitiesAreRefused() throws {
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: now)
        for bad in [SPIFFEID(trustDomain: "cluster.local", namespace: "a/b", serviceAccount: "x"),
                    SPIFFEID(trustDomain: "cluster.local", namespace: "", serviceAccount: "x"),
                    SPIFFEID(trustDomain: "cluster.local", namespace: "a", serviceAccount: "has space")] {
            #expect(throws: CAError.self) { try ca.issue(for: bad, ttl: 60, now: now) }
        }
    }

    @Test func theStateDirectoryKeepsTheRoot() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("meshca-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (first, firstOrigin) = try CAStore.load(certificatePath: nil, keyPath: nil, stateDirectory: directory,
                                                   trustDomain: "cluster.local", now: now)
        let (second, secondOrigin) = try CAStore.load(certificatePath: nil, keyPath: nil, stateDirectory: directory,
                                                     trustDomain: "cluster.local", now: now)
        #expect(firstOrigin.hasSuffix("(new)"))
        #expect(!secondOrigin.hasSuffix("(new)"))
        #expect(first.rootCertificate == second.rootCertificate)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/ca/root-key.pem")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }

    @Test func spiffeIDsParseBackFromURIsAndCertificates() throws {
        #expect(SPIFFEID(uri: identity.uri) == identity)
        for bad in ["spiffe://td/ns/a", "https://td/ns/a/sa/b", "spiffe://td/ns/a/sa/b/c", "spiffe://td/x/a/sa/b"] {
            #expect(SPIFFEID(uri: bad) == nil, "\(bad)")
        }
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: now)
        let issued = try ca.issue(for: identity, dnsNames: ["cart.shop"], ttl: 60, now: now)
        let leaf = try Certificate(pemEncoded: issued.certificateChainPEM)
        #expect(SPIFFEID(certificate: leaf) == identity)
        #expect(SPIFFEID(certificate: ca.rootCertificate) == nil)
    }

    @Test func aCSRIsSignedForTheIdentityItAsksForOnceAuthorized() async throws {
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: now)
        let (csr, keyPEM) = try WorkloadCSR.make(for: identity)
        let signed = try ca.sign(csrPEM: csr, ttl: 600, now: now) { #expect($0 == identity) }
        let leaf = try Certificate(pemEncoded: signed.certificatePEM)
        #expect(SPIFFEID(certificate: leaf) == identity)
        #expect(leaf.publicKey == (try Certificate.PrivateKey(pemEncoded: keyPEM)).publicKey, "the key stays with the caller")
        #expect(try await verify(pem: signed.certificatePEM, by: ca, at: now.addingTimeInterval(60)))

        struct Refused: Error {}
        #expect(throws: Refused.self) { try ca.sign(csrPEM: csr, ttl: 600, now: now) { _ in throw Refused() } }
        // A request whose content was changed after signing does not verify.
        let tampered = csr.replacingOccurrences(of: "A", with: "B", options: [], range: csr.range(of: "A", range: csr.index(csr.startIndex, offsetBy: 100)..<csr.endIndex))
        #expect(throws: (any Error).self) { try ca.sign(csrPEM: tampered, ttl: 600, now: now) { _ in } }
    }
}
