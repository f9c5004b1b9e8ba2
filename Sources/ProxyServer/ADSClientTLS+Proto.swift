import ProxyTLS
import ProxyXDS
import XDSAPI
import XDSResource

extension ADSClientTLS {
    /// TLS to the management server from the xDS cluster's `transport_socket`: certificates inline, from
    /// files or from `static_resources.secrets` (SDS cannot deliver what the SDS channel needs first).
    /// Nil for a plaintext cluster.
    init?(xdsCluster config: Envoy_Config_Cluster_V3_Cluster, secrets: [String: SecretProto], path: String) throws {
        guard config.hasTransportSocket,
              try TLSContextSpec.transportSocket(config.transportSocket, side: .client, path: path + ".transport_socket") != nil
        else { return nil }
        let tls = try UpstreamTlsContextProto(unpackingAny: config.transportSocket.typedConfig)
        let common = tls.commonTlsContext
        let contextPath = path + ".transport_socket.typed_config.common_tls_context"
        func secret(_ reference: Envoy_Extensions_TransportSockets_Tls_V3_SdsSecretConfig, field: String) throws -> SecretProto {
            guard !reference.hasSdsConfig, let found = secrets[reference.name] else {
                throw FieldError(contextPath + "." + field,
                                 "the xDS cluster's secrets must be static (static_resources.secrets), not '\(reference.name)' over SDS")
            }
            return found
        }
        var certificate = common.tlsCertificates.first
        if certificate == nil, let reference = common.tlsCertificateSdsSecretConfigs.first {
            certificate = try secret(reference, field: "tls_certificate_sds_secret_configs[0]").tlsCertificate
        }
        var validation: Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext?
        switch common.validationContextType {
        case .validationContext(let context)?: validation = context
        case .validationContextSdsSecretConfig(let reference)?:
            validation = try secret(reference, field: "validation_context_sds_secret_config").validationContext
        case nil: break
        default:
            throw FieldError(contextPath, "the xDS cluster supports validation_context or validation_context_sds_secret_config")
        }
        if let validation, !validation.matchTypedSubjectAltNames.isEmpty || !validation.matchSubjectAltNames.isEmpty {
            throw FieldError(contextPath + ".validation_context", "SAN matching is not supported on the xDS cluster yet")
        }
        self.init(
            certificateChain: try certificate.map { try $0.certificateChain.read(path: contextPath + ".tls_certificates[0].certificate_chain") },
            privateKey: try certificate.map { try $0.privateKey.read(path: contextPath + ".tls_certificates[0].private_key") },
            trustedCA: try validation.flatMap { $0.hasTrustedCa ? try $0.trustedCa.read(path: contextPath + ".validation_context.trusted_ca") : nil },
            serverName: tls.sni.isEmpty ? nil : tls.sni)
    }
}
