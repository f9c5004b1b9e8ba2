import NIOSSL
import XDSAPI
import XDSResource

/// A `CertificateValidationContext`, read: the CAs a peer's chain must lead to and the SANs its
/// certificate must carry.
struct ValidationSettings: Sendable {
    var trustedCA: [NIOSSLCertificate] = []
    var caSource = ""
    var sanMatchers: [SubjectAltNameMatcher] = []

    init(_ proto: ValidationContextProto, path: String, requireCA: Bool) throws {
        if proto.hasTrustedCa {
            let bytes = try proto.trustedCa.read(path: path + ".trusted_ca")
            do {
                trustedCA = try NIOSSLCertificate.fromPEMBytes(bytes)
            } catch {
                throw FieldError(path + ".trusted_ca", "Failed to load trusted CA certificates from \(proto.trustedCa.sourceDescription): \(error)")
            }
            guard !trustedCA.isEmpty else {
                throw FieldError(path + ".trusted_ca", "Failed to load trusted CA certificates from \(proto.trustedCa.sourceDescription)")
            }
            caSource = proto.trustedCa.sourceDescription
        }
        sanMatchers = try proto.matchTypedSubjectAltNames.enumerated().map { index, matcher in
            try SubjectAltNameMatcher(matcher, path: "\(path).match_typed_subject_alt_names[\(index)]")
        }
        // The deprecated untyped matchers compare against every SAN type.
        for (index, matcher) in proto.matchSubjectAltNames.enumerated() {
            let (rule, ignoreCase) = try SubjectAltNameMatcher.rule(matcher, path: "\(path).match_subject_alt_names[\(index)]")
            for kind in [SubjectAltNameMatcher.Kind.dns, .uri, .email, .ipAddress] {
                sanMatchers.append(SubjectAltNameMatcher(kind: kind, rule: rule, ignoreCase: ignoreCase))
            }
        }
        if requireCA, trustedCA.isEmpty, !sanMatchers.isEmpty {
            throw FieldError(path, "SAN-based verification of peer certificates without trusted CA is insecure and not allowed")
        }
        if proto.hasSystemRootCerts { throw FieldError(path + ".system_root_certs", "not supported yet") }
        if !proto.verifyCertificateHash.isEmpty || !proto.verifyCertificateSpki.isEmpty {
            throw FieldError(path + ".verify_certificate_hash", "not supported yet")
        }
        if proto.hasCrl { throw FieldError(path + ".crl", "not supported yet") }
        if proto.trustChainVerification != .verifyTrustChain {
            throw FieldError(path + ".trust_chain_verification", "only VERIFY_TRUST_CHAIN is supported")
        }
        if proto.hasCustomValidatorConfig { throw FieldError(path + ".custom_validator_config", "not supported") }
    }
}
