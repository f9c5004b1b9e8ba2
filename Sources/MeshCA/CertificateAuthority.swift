import Crypto
import Foundation
import SwiftASN1
import X509

/// meshd's certificate authority: one root (made here or loaded from PEM) that signs short-lived
/// SPIFFE workload certificates. Pure: time comes in as arguments, so tests run on a manual clock.
public struct CertificateAuthority: Sendable {
    public let rootCertificate: Certificate
    let rootKey: Certificate.PrivateKey

    /// A new self-signed root, valid for `validity` from `now`.
    public init(trustDomain: String, now: Date, validity: TimeInterval = 10 * 365 * 86_400) throws {
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName {
            OrganizationName("SwiftMesh")
            CommonName("SwiftMesh root CA for \(trustDomain)")
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        rootKey = Certificate.PrivateKey(key)
        rootCertificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(validity),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(keyIdentifier: Self.keyIdentifier(publicKey))
            },
            issuerPrivateKey: rootKey)
        self.rootKeyPEM = try rootKey.serializeAsPEM().pemString
    }

    /// A root loaded from PEM (`--ca-cert`/`--ca-key`, or meshd's state directory).
    public init(certificatePEM: String, keyPEM: String) throws {
        rootCertificate = try Certificate(pemEncoded: certificatePEM)
        rootKey = try Certificate.PrivateKey(pemEncoded: keyPEM)
        guard rootKey.publicKey == rootCertificate.publicKey else {
            throw CAError("the CA key does not belong to the CA certificate")
        }
        guard let constraints = try? rootCertificate.extensions.basicConstraints,
              case .isCertificateAuthority = constraints else {
            throw CAError("the CA certificate is not a CA (basicConstraints CA:TRUE is missing)")
        }
        rootKeyPEM = keyPEM
    }

    public let rootKeyPEM: String
    public var rootCertificatePEM: String { (try? rootCertificate.serializeAsPEM().pemString) ?? "" }

    /// A workload certificate for `identity`: a new P-256 key, the SPIFFE ID as its URI SAN (and
    /// `dnsNames`, for a server clients reach by name), usable for server and client authentication,
    /// valid from a little before `now` for `ttl`.
    public func issue(for identity: SPIFFEID, dnsNames: [String] = [], ttl: TimeInterval, now: Date) throws -> IssuedCertificate {
        guard identity.isWellFormed else { throw CAError("malformed identity \(identity)") }
        let key = P256.Signing.PrivateKey()
        let publicKey = Certificate.PublicKey(key.publicKey)
        let notAfter = now.addingTimeInterval(ttl)
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: now.addingTimeInterval(-60), notValidAfter: notAfter,
            issuer: rootCertificate.subject, subject: DistinguishedName(), signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Self.workloadExtensions(identity: identity, dnsNames: dnsNames, issuer: rootCertificate.publicKey),
            issuerPrivateKey: rootKey)
        var der = DER.Serializer()
        try der.serialize(certificate)
        // A copy of exactly its length: the serializer's array has room for a kilobyte, and meshd keeps
        // one certificate for every proxy. (`Array(slice)` of a whole array would share its storage.)
        let exact = der.serializedBytes.withUnsafeBufferPointer { [UInt8]($0) }
        return IssuedCertificate(identity: identity, certificateDER: exact,
                                 privateKeyRaw: Array(key.rawRepresentation), notBefore: now, notAfter: notAfter,
                                 serialNumber: certificate.serialNumber.bytes)
    }

    /// A workload certificate's extensions: not a CA, server and client authentication, the SPIFFE ID
    /// (and DNS names) as a critical SAN since the subject is empty (RFC 5280 4.2.1.6).
    static func workloadExtensions(identity: SPIFFEID, dnsNames: [String], issuer: Certificate.PublicKey) throws
        -> Certificate.Extensions
    {
        try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            AuthorityKeyIdentifier(keyIdentifier: keyIdentifier(issuer))
            Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)] + dnsNames.map { .dnsName($0) }))
        }
    }

    /// SHA-1 of the public key bits, the usual key identifier (RFC 5280 4.2.1.2, method 1).
    static func keyIdentifier(_ key: Certificate.PublicKey) -> ArraySlice<UInt8> {
        ArraySlice(Insecure.SHA1.hash(data: key.subjectPublicKeyInfoBytes))
    }
}

/// A workload certificate and its key, with when it should be renewed. meshd keeps one for every
/// proxy it has seen, so they are held as DER and the raw key (~0.5 KB) and made PEM when asked
/// (~2 KB held as PEM and the serial's text).
public struct IssuedCertificate: Sendable, Equatable {
    public var identity: SPIFFEID
    public var certificateDER: [UInt8]
    /// The P-256 private key's raw scalar.
    public var privateKeyRaw: [UInt8]
    public var notBefore: Date
    public var notAfter: Date
    public var serialNumberBytes: [UInt8]

    public init(identity: SPIFFEID, certificateDER: [UInt8], privateKeyRaw: [UInt8], notBefore: Date, notAfter: Date,
                serialNumber: ArraySlice<UInt8>) {
        self.identity = identity
        self.certificateDER = certificateDER
        self.privateKeyRaw = privateKeyRaw
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.serialNumberBytes = Array(serialNumber)
    }

    /// The certificate (the whole chain: meshd's CA signs workloads with its root), PEM.
    public var certificateChainPEM: String {
        PEMDocument(type: "CERTIFICATE", derBytes: certificateDER).pemString
    }

    /// The private key, PEM (PKCS #8, as `P256.Signing.PrivateKey.pemRepresentation` writes it).
    public var privateKeyPEM: String {
        (try? P256.Signing.PrivateKey(rawRepresentation: privateKeyRaw))?.pemRepresentation ?? ""
    }

    /// The serial number as X509 prints it: hex bytes joined by colons.
    public var serialNumber: String { Certificate.SerialNumber(bytes: serialNumberBytes).description }

    /// Renewal is due at half of the lifetime, as Istio's agents renew.
    public var renewAt: Date { notBefore.addingTimeInterval(notAfter.timeIntervalSince(notBefore) / 2) }
}

public struct CAError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
