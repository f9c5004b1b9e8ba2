import NIOSSL
import XDSAPI
import XDSResource

/// A `TlsCertificate`: a certificate chain and its private key, read and checked to belong together.
public struct CertificateKeyPair: Sendable {
    public let chain: [NIOSSLCertificate]
    public let key: NIOSSLPrivateKey
    /// Where the chain came from (a file path or `<inline>`), for `/certs`.
    public let chainSource: String

    public init(_ proto: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate, path: String) throws {
        guard proto.hasCertificateChain else {
            throw FieldError(path + ".certificate_chain", "a certificate chain is required")
        }
        guard proto.hasPrivateKey else {
            throw FieldError(path + ".private_key", "a private key is required (private_key_provider is not supported)")
        }
        if proto.hasPassword {
            throw FieldError(path + ".password", "encrypted private keys are not supported")
        }
        if proto.hasWatchedDirectory {
            throw FieldError(path + ".watched_directory", "not supported yet; SDS pushes rotate certificates")
        }
        let chainBytes = try proto.certificateChain.read(path: path + ".certificate_chain")
        do {
            chain = try NIOSSLCertificate.fromPEMBytes(chainBytes)
        } catch {
            throw FieldError(path + ".certificate_chain", "Failed to load certificate chain from \(proto.certificateChain.sourceDescription): \(error)")
        }
        guard !chain.isEmpty else {
            throw FieldError(path + ".certificate_chain", "Failed to load certificate chain from \(proto.certificateChain.sourceDescription): no certificate found")
        }
        do {
            key = try NIOSSLPrivateKey(bytes: try proto.privateKey.read(path: path + ".private_key"), format: .pem)
        } catch let error as FieldError {
            throw error
        } catch {
            throw FieldError(path + ".private_key", "Failed to load private key from \(proto.privateKey.sourceDescription): \(error)")
        }
        chainSource = proto.certificateChain.sourceDescription
        // BoringSSL checks the pair when a context takes it; a mismatch is a config error here, not a
        // handshake failure later.
        var probe = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                             privateKey: .privateKey(key))
        probe.certificateVerification = .none
        do {
            _ = try NIOSSLContext(configuration: probe)
        } catch {
            throw FieldError(path, "the private key does not match the certificate chain (\(error))")
        }
    }
}
