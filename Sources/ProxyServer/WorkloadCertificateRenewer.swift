import Foundation
import Logging
import MeshCA
import ProxyTLS
import ProxyXDS
import X509
import XDSAPI
import XDSResource

/// `--workload-cert-from-csr`: the proxy makes its workload key itself, has meshd certify it with a CSR
/// (authenticated by the xDS channel's client certificate, whose SPIFFE ID it asks for), installs it as
/// the secret `default`, and does it again at half of each certificate's life. The key never leaves
/// the process.
struct WorkloadCertificateRenewer: Sendable {
    static let secretName = "default"

    let host: String
    let port: Int
    let tls: ADSClientTLS
    let identity: SPIFFEID
    let config: ConfigManager
    let logger = Logger(label: "config")

    init(host: String, port: Int, tls: ADSClientTLS?, config: ConfigManager) throws {
        guard let tls, let chain = tls.certificateChain, tls.privateKey != nil else {
            throw FieldError("--workload-cert-from-csr", "needs an xDS cluster with an UpstreamTlsContext client certificate (mTLS to meshd)")
        }
        let leaf = try Certificate(pemEncoded: String(decoding: chain, as: UTF8.self))
        guard let identity = SPIFFEID(certificate: leaf) else {
            throw FieldError("--workload-cert-from-csr", "the xDS client certificate carries no SPIFFE ID to ask for")
        }
        self.host = host
        self.port = port
        self.tls = tls
        self.identity = identity
        self.config = config
    }

    func run() async {
        var retry: Double = 1
        while !Task.isCancelled {
            do {
                let (csr, key) = try WorkloadCSR.make(for: identity)
                let chain = try await CertificateSigningClient.createCertificate(
                    host: host, port: port, tls: tls, csrPEM: csr, validitySeconds: 0)
                guard let leafPEM = chain.first else { throw FieldError("CreateCertificate", "an empty certificate chain") }
                let leaf = try Certificate(pemEncoded: leafPEM)
                var secret = SecretProto()
                secret.name = Self.secretName
                secret.tlsCertificate.certificateChain.inlineString = leafPEM
                secret.tlsCertificate.privateKey.inlineString = key
                let errors = await config.installLocalSecret(secret)
                if !errors.isEmpty { logger.warning("the CSR-certified workload certificate: \(errors.joined(separator: "; "))") }
                logger.info("workload certificate for \(identity) certified by CSR, valid until \(leaf.notValidAfter)")
                retry = 1
                let renewAt = leaf.notValidBefore.addingTimeInterval(leaf.notValidAfter.timeIntervalSince(leaf.notValidBefore) / 2)
                try? await Task.sleep(for: .milliseconds(Int(max(0.1, renewAt.timeIntervalSinceNow) * 1000)))
            } catch {
                logger.warning("CreateCertificate for \(identity) failed (retrying in \(Int(retry)) s): \(error)")
                try? await Task.sleep(for: .milliseconds(Int(retry * 1000)))
                retry = min(30, retry * 2)
            }
        }
    }
}
