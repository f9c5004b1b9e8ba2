/// What a downstream TLS connection established, read once at its handshake: the peer's and our own
/// certificate identities, for `x-forwarded-client-cert`, RBAC principals and access logs.
public final class DownstreamTLSInfo: Sendable {
    public let version: String
    public let peerURISANs: [String]
    public let peerDNSSANs: [String]
    /// The peer certificate's subject in RFC 2253 form, empty without a peer certificate.
    public let peerSubject: String
    /// Lower-case hex SHA-256 of the peer certificate's DER, empty without one.
    public let peerFingerprint256: String
    public let peerSerial: String
    /// The peer certificate in PEM, for XFCC's `Cert`.
    public let peerCertificatePEM: String
    public let localURISANs: [String]
    public let localSubject: String

    public init(version: String, peerURISANs: [String] = [], peerDNSSANs: [String] = [], peerSubject: String = "",
                peerFingerprint256: String = "", peerSerial: String = "", peerCertificatePEM: String = "",
                localURISANs: [String] = [], localSubject: String = "") {
        self.version = version
        self.peerURISANs = peerURISANs
        self.peerDNSSANs = peerDNSSANs
        self.peerSubject = peerSubject
        self.peerFingerprint256 = peerFingerprint256
        self.peerSerial = peerSerial
        self.peerCertificatePEM = peerCertificatePEM
        self.localURISANs = localURISANs
        self.localSubject = localSubject
    }

    /// Whether the peer presented a certificate (the connection is mutual TLS).
    public var peerPresentedCertificate: Bool { !peerFingerprint256.isEmpty }
}
