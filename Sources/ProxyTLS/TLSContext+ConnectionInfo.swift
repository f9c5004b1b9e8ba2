import Crypto
import Foundation
import NIOSSL
import ProxyCore

extension TLSContext {
    /// What a finished server handshake established, for the connection's requests.
    func connectionInfo(peer: NIOSSLCertificate?, version: TLSVersion?) -> DownstreamTLSInfo {
        let versionName = switch version {
        case .tlsv13?: "TLSv1.3"
        case .tlsv12?: "TLSv1.2"
        case .tlsv11?: "TLSv1.1"
        case .tlsv1?: "TLSv1"
        case nil: ""
        }
        guard let peer, let der = try? peer.toDERBytes(), let details = try? CertificateDetails(der: der) else {
            return DownstreamTLSInfo(version: versionName, localURISANs: local.uris, localSubject: local.subject)
        }
        let fingerprint = SHA256.hash(data: der).map { String(format: "%02x", $0) }.joined()
        return DownstreamTLSInfo(
            version: versionName, peerURISANs: details.uris, peerDNSSANs: details.dnsNames, peerSubject: details.subject,
            peerFingerprint256: fingerprint, peerSerial: details.serialNumber, peerCertificatePEM: Self.pem(der),
            localURISANs: local.uris, localSubject: local.subject)
    }

    static func pem(_ der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString()
        var lines: [Substring] = []
        var rest = Substring(base64)
        while !rest.isEmpty {
            lines.append(rest.prefix(64))
            rest = rest.dropFirst(64)
        }
        return "-----BEGIN CERTIFICATE-----\n" + lines.joined(separator: "\n") + "\n-----END CERTIFICATE-----\n"
    }
}
