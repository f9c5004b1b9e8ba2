import Crypto
import Foundation
import SwiftASN1
import X509

extension CertificateAuthority {
    /// Signs a certificate signing request: the certificate gets the request's public key and the
    /// SPIFFE ID it asks for (its only URI SAN), once `authorize` accepts that identity. The request's
    /// signature must verify, so the caller holds the key.
    public func sign(csrPEM: String, ttl: TimeInterval, now: Date,
                     authorize: (SPIFFEID) throws -> Void) throws -> (certificatePEM: String, identity: SPIFFEID, notAfter: Date) {
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw CAError("the CSR does not parse: \(error)")
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw CAError("the CSR's signature does not verify")
        }
        let names = (try? request.attributes.extensionRequest?.extensions.subjectAlternativeNames) ?? nil
        let identities = names.map { Array($0) }?.compactMap { name -> SPIFFEID? in
            if case .uniformResourceIdentifier(let uri) = name { return SPIFFEID(uri: uri) }
            return nil
        } ?? []
        guard identities.count == 1, let identity = identities.first else {
            throw CAError("the CSR must ask for exactly one SPIFFE ID as a URI SAN")
        }
        try authorize(identity)
        let notAfter = now.addingTimeInterval(ttl)
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: request.publicKey,
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: notAfter,
            issuer: rootCertificate.subject, subject: DistinguishedName(), signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Self.workloadExtensions(identity: identity, dnsNames: [], issuer: rootCertificate.publicKey),
            issuerPrivateKey: rootKey)
        return (try certificate.serializeAsPEM().pemString, identity, notAfter)
    }
}

/// A certificate signing request for a workload identity, made where the key lives (meshproxy).
public enum WorkloadCSR {
    /// A new P-256 key and a CSR for `identity` signed with it, both PEM.
    public static func make(for identity: SPIFFEID) throws -> (csrPEM: String, privateKeyPEM: String) {
        let key = P256.Signing.PrivateKey()
        let extensions = try Certificate.Extensions {
            SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)])
        }
        let request = try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName(), privateKey: Certificate.PrivateKey(key),
            attributes: CertificateSigningRequest.Attributes([try .init(ExtensionRequest(extensions: extensions))]),
            signatureAlgorithm: .ecdsaWithSHA256)
        return (try request.serializeAsPEM().pemString, key.pemRepresentation)
    }
}
