import Foundation
import NIOSSL
import SwiftProtobuf
import XDSAPI

extension TLSContext {
    /// This context's certificates as Envoy's `/certs` lists them: the first trusted CA and the leaf
    /// of the certificate chain, with serial, SANs and validity.
    public func adminCertificate(now: Date = Date()) -> Envoy_Admin_V3_Certificate {
        var certificate = Envoy_Admin_V3_Certificate()
        if let ca = trustedCA.first, let details = Self.details(ca, path: caSource, now: now) {
            certificate.caCert = [details]
        }
        if let pair = certificates.first, let leaf = pair.chain.first,
           let details = Self.details(leaf, path: pair.chainSource, now: now) {
            certificate.certChain = [details]
        }
        return certificate
    }

    static func details(_ certificate: NIOSSLCertificate, path: String, now: Date) -> Envoy_Admin_V3_CertificateDetails? {
        guard let parsed = try? CertificateDetails(certificate) else { return nil }
        var details = Envoy_Admin_V3_CertificateDetails()
        details.path = path
        // As BoringSSL's BN_bn2hex prints it: whole bytes, without the sign byte's leading zeros.
        var serial = Substring(parsed.serialNumber)
        while serial.hasPrefix("00"), serial.count > 2 { serial = serial.dropFirst(2) }
        details.serialNumber = String(serial)
        func name(_ set: (inout Envoy_Admin_V3_SubjectAlternateName) -> Void) -> Envoy_Admin_V3_SubjectAlternateName {
            var name = Envoy_Admin_V3_SubjectAlternateName()
            set(&name)
            return name
        }
        details.subjectAltNames = parsed.dnsNames.map { value in name { $0.dns = value } }
            + parsed.uris.map { value in name { $0.uri = value } }
            + parsed.ipAddresses.map { value in name { $0.ipAddress = value } }
        details.daysUntilExpiration = UInt64(parsed.daysUntilExpiration(now: now))
        details.validFrom = Google_Protobuf_Timestamp(date: parsed.notBefore)
        details.expirationTime = Google_Protobuf_Timestamp(date: parsed.notAfter)
        return details
    }
}
