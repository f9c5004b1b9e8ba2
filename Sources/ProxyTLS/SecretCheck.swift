import XDSResource

/// Checks a Secret on its own, as it arrives (static or over SDS): a certificate whose key does not
/// match, or a CA bundle that does not parse, is refused with the reason before anything uses it.
public enum SecretCheck {
    public static func validate(_ secret: SecretProto) throws {
        guard !secret.name.isEmpty else { throw FieldError("name", "a secret needs a name") }
        switch secret.type {
        case .tlsCertificate(let certificate)?:
            _ = try CertificateKeyPair(certificate, path: "tls_certificate")
        case .validationContext(let context)?:
            _ = try ValidationSettings(context, path: "validation_context", requireCA: false)
        case .sessionTicketKeys?:
            throw FieldError("session_ticket_keys", "not supported yet")
        case .genericSecret?:
            throw FieldError("generic_secret", "not supported yet")
        case nil:
            throw FieldError("type", "a tls_certificate or validation_context is required")
        }
    }
}
