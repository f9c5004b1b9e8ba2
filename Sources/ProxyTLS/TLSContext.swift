import NIOCore
import NIOSSL
import XDSResource

/// A TLS context built from its spec and secrets: the NIOSSL context new handshakes use, and what
/// `/certs`, SAN checks and stats need. Immutable; a secret rotation builds a new one.
public final class TLSContext: Sendable {
    public let side: TLSContextSpec.Side
    let sslContext: NIOSSLContext
    public let certificates: [CertificateKeyPair]
    public let trustedCA: [NIOSSLCertificate]
    public let caSource: String
    let sanMatchers: [SubjectAltNameMatcher]
    public let sni: String?
    let autoHostSNI: Bool
    let autoSNISANValidation: Bool
    public let stats: TLSStats
    /// This side's own certificate identity (URI SANs, subject), for XFCC's `By` and access logs.
    let local: (uris: [String], subject: String)

    init(spec: TLSContextSpec, certificates: [CertificateKeyPair], validation: ValidationSettings?,
         stats: TLSStats) throws {
        var config: TLSConfiguration
        switch spec.side {
        case .server:
            guard let pair = certificates.first else {
                throw FieldError(spec.path, "No TLS certificates found for server context")
            }
            config = .makeServerConfiguration(certificateChain: pair.chain.map { .certificate($0) },
                                              privateKey: .privateKey(pair.key))
        case .client:
            config = .makeClientConfiguration()
            if let pair = certificates.first {
                config.certificateChain = pair.chain.map { .certificate($0) }
                config.privateKey = .privateKey(pair.key)
            }
        }
        config.minimumTLSVersion = spec.minimumVersion
        config.maximumTLSVersion = spec.maximumVersion
        if !spec.cipherSuites.isEmpty { config.cipherSuites = spec.cipherSuites.joined(separator: ":") }
        config.applicationProtocols = spec.alpn
        if let validation, !validation.trustedCA.isEmpty {
            config.trustRoots = .certificates(validation.trustedCA)
            // Envoy asks a client for a certificate whenever it has CAs to check one against, and
            // refuses the handshake without one only when require_client_certificate says so.
            config.certificateVerification = spec.side == .server && !spec.requireClientCertificate
                ? .optionalVerification : .noHostnameVerification
        } else {
            // As in Envoy: without a validation context the peer's certificate is not checked.
            config.certificateVerification = .none
        }
        do {
            sslContext = try NIOSSLContext(configuration: config)
        } catch {
            throw FieldError(spec.path, "Failed to initialize TLS context: \(error)")
        }
        side = spec.side
        self.certificates = certificates
        trustedCA = validation?.trustedCA ?? []
        caSource = validation?.caSource ?? ""
        sanMatchers = validation?.sanMatchers ?? []
        sni = spec.sni.isEmpty ? nil : spec.sni
        autoHostSNI = spec.autoHostSNI
        autoSNISANValidation = spec.autoSNISANValidation
        if autoSNISANValidation, validation?.trustedCA.isEmpty ?? true {
            throw FieldError(spec.path + ".auto_sni_san_validation", "validating the SAN needs a validation context with a trusted CA")
        }
        self.stats = stats
        let own = certificates.first?.chain.first.flatMap { try? CertificateDetails($0) }
        local = (own?.uris ?? [], own?.subject ?? "")
    }

    /// The handler that terminates TLS on an accepted connection.
    public func makeServerHandler() -> NIOSSLServerHandler {
        guard !sanMatchers.isEmpty else { return NIOSSLServerHandler(context: sslContext) }
        return NIOSSLServerHandler._makeSSLServerHandler(
            context: sslContext,
            additionalPeerCertificateVerificationCallback: { [self] certificate, channel in
                verifySAN(certificate, channel, matchers: sanMatchers)
            })
    }

    /// The handler that originates TLS on an upstream connection to `hostname`: SNI from the config,
    /// or with `auto_host_sni` the host's name (which, with `auto_sni_san_validation`, its certificate
    /// must carry).
    /// `requestSNI` (the cluster's `auto_sni`, from the request) wins over both, and is checked
    /// against the server's DNS SANs when `validateRequestSNI`.
    public func makeClientHandler(hostname: String? = nil, requestSNI: String? = nil,
                                  validateRequestSNI: Bool = false) throws -> NIOSSLClientHandler {
        let name = requestSNI ?? (autoHostSNI ? (hostname.flatMap { $0.isEmpty ? nil : $0 } ?? sni) : sni)
        var matchers = sanMatchers
        // As in Envoy, the automatic checks replace the configured SAN matchers.
        if (autoSNISANValidation || (requestSNI != nil && validateRequestSNI)), let name {
            guard !trustedCA.isEmpty else { throw TLSVerificationError.noTrustedCA }
            matchers = [SubjectAltNameMatcher(kind: .dns, rule: .exact(name))]
        }
        guard !matchers.isEmpty else { return try NIOSSLClientHandler(context: sslContext, serverHostname: name) }
        return try NIOSSLClientHandler._makeSSLClientHandler(
            context: sslContext, serverHostname: name,
            additionalPeerCertificateVerificationCallback: { [self] certificate, channel in
                verifySAN(certificate, channel, matchers: matchers)
            })
    }

    /// Runs after the chain verified: the leaf must carry a SAN the validation context names.
    private func verifySAN(_ certificate: NIOSSLCertificate, _ channel: any Channel,
                           matchers: [SubjectAltNameMatcher]) -> EventLoopFuture<Void> {
        if let details = try? CertificateDetails(certificate), details.matches(matchers) {
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        stats.failVerifySAN.increment()
        return channel.eventLoop.makeFailedFuture(TLSVerificationError.subjectAltNameMismatch)
    }
}

/// Why meshproxy refused a peer's certificate after the chain verified.
public enum TLSVerificationError: Error, CustomStringConvertible {
    case subjectAltNameMismatch
    /// A SAN check was asked for without CAs to verify the chain against.
    case noTrustedCA

    public var description: String {
        switch self {
        case .subjectAltNameMismatch: "the peer certificate's SANs match none of the configured matchers"
        case .noTrustedCA: "SAN validation needs a validation context with a trusted CA"
        }
    }
}
