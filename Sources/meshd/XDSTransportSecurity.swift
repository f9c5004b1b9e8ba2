import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import MeshCA
import X509

/// TLS for meshd's ADS port: the server certificate from files or issued by meshd's own CA (as
/// `spiffe://<trust-domain>/ns/meshd/sa/meshd`, with the listen host and `localhost` as DNS names), and
/// for mTLS, client certificates that must chain to meshd's root.
enum XDSTransportSecurity {
    static func make(tls: Bool, mutual: Bool, certificatePath: String?, keyPath: String?, ca: CertificateAuthority?,
                     trustDomain: String, host: String) throws -> HTTP2ServerTransport.Posix.TransportSecurity {
        guard tls else { return .plaintext }
        let chain: TLSConfig.CertificateSource
        let key: TLSConfig.PrivateKeySource
        switch (certificatePath, keyPath) {
        case (let certificate?, let privateKey?):
            chain = .file(path: certificate, format: .pem)
            key = .file(path: privateKey, format: .pem)
        case (nil, nil):
            guard let ca else { throw CAError("--xds-tls without --xds-cert needs meshd's CA") }
            // Renewed with every start; a year is long enough for a process that lives that long.
            let issued = try ca.issue(for: SPIFFEID(trustDomain: trustDomain, namespace: "meshd", serviceAccount: "meshd"),
                                      dnsNames: Array(Set(["localhost", "meshd", host])).sorted(), ttl: 365 * 86_400,
                                      now: Date())
            chain = .bytes(Array(issued.certificateChainPEM.utf8), format: .pem)
            key = .bytes(Array(issued.privateKeyPEM.utf8), format: .pem)
        default:
            throw CAError("--xds-cert and --xds-key go together")
        }
        guard mutual else { return .tls(certificateChain: [chain], privateKey: key) }
        guard let ca else { throw CAError("--xds-mtls needs meshd's CA") }
        return .mTLS(certificateChain: [chain], privateKey: key) { config in
            config.trustRoots = .certificates([.bytes(Array(ca.rootCertificatePEM.utf8), format: .pem)])
            config.clientCertificateVerification = .noHostnameVerification
        }
    }

    /// The URI SANs of a stream's client certificate (empty without mTLS).
    static let peerURIs: @Sendable (GRPCCore.ServerContext) -> [String] = { context in
        guard let transport = context.transportSpecific as? HTTP2ServerTransport.Posix.Context,
              let certificate = transport.peerCertificate,
              let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap { name in
            if case .uniformResourceIdentifier(let uri) = name { return uri }
            return nil
        }
    }
}
