import NIOSSL
import SwiftProtobuf
import XDSAPI
import XDSResource

public typealias DownstreamTlsContextProto = Envoy_Extensions_TransportSockets_Tls_V3_DownstreamTlsContext
public typealias UpstreamTlsContextProto = Envoy_Extensions_TransportSockets_Tls_V3_UpstreamTlsContext
public typealias SecretProto = Envoy_Extensions_TransportSockets_Tls_V3_Secret
typealias ValidationContextProto = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext
typealias CommonTlsContextProto = Envoy_Extensions_TransportSockets_Tls_V3_CommonTlsContext

/// A TLS context as configured (a DownstreamTlsContext or UpstreamTlsContext) with its secrets
/// still named: checked when the config arrives, built into a `TLSContext` once every secret it
/// names is known, and rebuilt whenever one of them changes.
public struct TLSContextSpec: Sendable, Equatable {
    public enum Side: Sendable, Equatable { case server, client }

    /// A secret named by `tls_certificate_sds_secret_configs` or `validation_context_sds_secret_config`:
    /// from `static_resources.secrets` when it has no `sds_config`, otherwise over ADS.
    public struct SecretReference: Sendable, Hashable {
        public var name: String
        /// Over ADS or from a file: it may arrive (or change) after the config.
        public var dynamic: Bool
        /// `path_config_source`: the file (a DiscoveryResponse of Secrets) it is read from.
        public var file: String? = nil

        /// How the secret is looked up: by name, or for a file source by file and name.
        public var key: String { file.map { "\($0)#\(name)" } ?? name }
    }

    public let side: Side
    let path: String
    var certificates: [Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate] = []
    var certificateSecrets: [SecretReference] = []
    var validation: ValidationContextProto?
    var validationSecret: SecretReference?
    public var alpn: [String] = []
    var minimumVersion: TLSVersion = .tlsv12
    var maximumVersion: TLSVersion = .tlsv13
    var cipherSuites: [String] = []
    var requireClientCertificate = false
    public var sni: String = ""
    /// `auto_host_sni`: SNI from the upstream host's hostname; `auto_sni_san_validation`: its
    /// certificate must then carry that name.
    var autoHostSNI = false
    var autoSNISANValidation = false

    public static let downstreamTypeURL = TypeURL.prefix + DownstreamTlsContextProto.protoMessageName
    public static let upstreamTypeURL = TypeURL.prefix + UpstreamTlsContextProto.protoMessageName
    public static let rawBufferTypeURL = TypeURL.prefix + "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"

    /// The spec of a listener's or cluster's `transport_socket`; nil for plaintext (`raw_buffer`).
    public static func transportSocket(_ socket: Envoy_Config_Core_V3_TransportSocket, side: Side,
                                       path: String) throws -> TLSContextSpec? {
        let any = socket.typedConfig
        let expected = side == .server ? downstreamTypeURL : upstreamTypeURL
        switch any.typeURL {
        case rawBufferTypeURL: return nil
        case expected:
            let typedPath = path + ".typed_config"
            if side == .server {
                return try TLSContextSpec(downstream: try DownstreamTlsContextProto(unpackingAny: any), path: typedPath)
            }
            return try TLSContextSpec(upstream: try UpstreamTlsContextProto(unpackingAny: any), path: typedPath)
        case "" where socket.name == "envoy.transport_sockets.raw_buffer": return nil
        default:
            throw FieldError(path, "Didn't find a registered implementation for '\(socket.name)' with type URL: '\(any.typeURL)'")
        }
    }

    public init(downstream proto: DownstreamTlsContextProto, path: String) throws {
        side = .server
        self.path = path
        requireClientCertificate = proto.hasRequireClientCertificate && proto.requireClientCertificate.value
        if proto.hasRequireSni, proto.requireSni.value {
            throw FieldError(path + ".require_sni", "not supported yet")
        }
        if proto.sessionTicketKeysType != nil {
            throw FieldError(path + ".session_ticket_keys", "not supported yet")
        }
        try readCommon(proto.commonTlsContext, path: path + ".common_tls_context")
        if certificates.isEmpty, certificateSecrets.isEmpty {
            throw FieldError(path + ".common_tls_context", "No TLS certificates found for server context")
        }
        if requireClientCertificate, validation == nil, validationSecret == nil {
            throw FieldError(path + ".require_client_certificate", "requiring a client certificate needs a validation context with a trusted CA")
        }
    }

    public init(upstream proto: UpstreamTlsContextProto, path: String) throws {
        side = .client
        self.path = path
        sni = proto.sni
        autoHostSNI = proto.autoHostSni
        autoSNISANValidation = proto.autoSniSanValidation
        if proto.allowRenegotiation {
            throw FieldError(path + ".allow_renegotiation", "not supported")
        }
        try readCommon(proto.commonTlsContext, path: path + ".common_tls_context")
    }

    private mutating func readCommon(_ common: CommonTlsContextProto, path: String) throws {
        certificates = common.tlsCertificates
        certificateSecrets = try common.tlsCertificateSdsSecretConfigs.enumerated().map { index, config in
            try Self.reference(config, path: "\(path).tls_certificate_sds_secret_configs[\(index)]")
        }
        if certificates.count + certificateSecrets.count > 1 {
            throw FieldError(path + ".tls_certificates", "only one certificate per context is supported so far")
        }
        if common.hasTlsCertificateProviderInstance || common.hasTlsCertificateCertificateProvider
            || common.hasTlsCertificateCertificateProviderInstance || common.hasCustomTlsCertificateSelector {
            throw FieldError(path, "certificate providers are not supported; use tls_certificates or SDS")
        }
        if common.hasCustomHandshaker { throw FieldError(path + ".custom_handshaker", "not supported") }
        if common.hasKeyLog { throw FieldError(path + ".key_log", "not supported") }
        switch common.validationContextType {
        case .validationContext(let context)?: validation = context
        case .validationContextSdsSecretConfig(let config)?:
            validationSecret = try Self.reference(config, path: path + ".validation_context_sds_secret_config")
        case .combinedValidationContext(let combined)?:
            validation = combined.defaultValidationContext
            validationSecret = try Self.reference(combined.validationContextSdsSecretConfig,
                                                  path: path + ".combined_validation_context.validation_context_sds_secret_config")
        case nil: break
        default: throw FieldError(path, "certificate provider validation contexts are not supported")
        }
        if let validation { _ = try ValidationSettings(validation, path: path + ".validation_context", requireCA: validationSecret == nil) }
        alpn = common.alpnProtocols
        if common.hasTlsParams {
            let params = common.tlsParams
            let paramsPath = path + ".tls_params"
            if let minimum = try Self.version(params.tlsMinimumProtocolVersion, path: paramsPath + ".tls_minimum_protocol_version") {
                minimumVersion = minimum
            }
            if let maximum = try Self.version(params.tlsMaximumProtocolVersion, path: paramsPath + ".tls_maximum_protocol_version") {
                maximumVersion = maximum
            }
            guard Self.rank(minimumVersion) <= Self.rank(maximumVersion) else {
                throw FieldError(paramsPath, "tls_minimum_protocol_version is above tls_maximum_protocol_version")
            }
            cipherSuites = params.cipherSuites
            if !params.ecdhCurves.isEmpty { throw FieldError(paramsPath + ".ecdh_curves", "not supported yet") }
            if !params.signatureAlgorithms.isEmpty {
                throw FieldError(paramsPath + ".signature_algorithms", "not supported yet")
            }
        }
    }

    private static func reference(_ config: Envoy_Extensions_TransportSockets_Tls_V3_SdsSecretConfig,
                                  path: String) throws -> SecretReference {
        guard !config.name.isEmpty else { throw FieldError(path + ".name", "a secret name is required") }
        guard config.hasSdsConfig else { return SecretReference(name: config.name, dynamic: false) }
        switch config.sdsConfig.configSourceSpecifier {
        case .ads?: return SecretReference(name: config.name, dynamic: true)
        case .pathConfigSource(let source)?:
            guard !source.path.isEmpty else { throw FieldError(path + ".sds_config.path_config_source.path", "a path is required") }
            return SecretReference(name: config.name, dynamic: true, file: source.path)
        case .path(let file)? where !file.isEmpty:
            return SecretReference(name: config.name, dynamic: true, file: file)
        default:
            throw FieldError(path + ".sds_config", "SDS sources supported: ads, path_config_source")
        }
    }

    private static func version(_ value: Envoy_Extensions_TransportSockets_Tls_V3_TlsParameters.TlsProtocol,
                                path: String) throws -> TLSVersion? {
        switch value {
        case .tlsAuto: return nil
        case .tlsv10: return .tlsv1
        case .tlsv11: return .tlsv11
        case .tlsv12: return .tlsv12
        case .tlsv13: return .tlsv13
        case .UNRECOGNIZED(let raw): throw FieldError(path, "unknown TLS version \(raw)")
        }
    }

    static func rank(_ version: TLSVersion) -> Int {
        switch version {
        case .tlsv1: 0
        case .tlsv11: 1
        case .tlsv12: 2
        case .tlsv13: 3
        }
    }

    /// Every secret this context names.
    public var secretReferences: [SecretReference] {
        certificateSecrets + (validationSecret.map { [$0] } ?? [])
    }

    /// Builds the context from the secrets known now; nil while a dynamic secret has not arrived.
    /// Throws for a static secret that does not exist and for anything NIOSSL refuses.
    public func build(secrets: [String: SecretProto], stats: TLSStats) throws -> TLSContext? {
        var pairs: [CertificateKeyPair] = []
        for (index, certificate) in certificates.enumerated() {
            pairs.append(try CertificateKeyPair(certificate, path: "\(path).common_tls_context.tls_certificates[\(index)]"))
        }
        for reference in certificateSecrets {
            guard let secret = secrets[reference.key] else {
                if reference.dynamic { return nil }
                throw FieldError(path, "Unknown static secret: \(reference.name)")
            }
            guard case .tlsCertificate(let certificate)? = secret.type else {
                throw FieldError(path, "secret \(reference.name) is not a tls_certificate")
            }
            pairs.append(try CertificateKeyPair(certificate, path: "secret \(reference.name).tls_certificate"))
        }
        var validationProto = validation
        if let reference = validationSecret {
            guard let secret = secrets[reference.key] else {
                if reference.dynamic { return nil }
                throw FieldError(path, "Unknown static secret: \(reference.name)")
            }
            guard case .validationContext(let fromSecret)? = secret.type else {
                throw FieldError(path, "secret \(reference.name) is not a validation_context")
            }
            // Combined: the secret's trust anchors with the default context's SAN matchers.
            var merged = fromSecret
            if let local = validation {
                merged.matchTypedSubjectAltNames += local.matchTypedSubjectAltNames
                merged.matchSubjectAltNames += local.matchSubjectAltNames
            }
            validationProto = merged
        }
        let settings = try validationProto.map { try ValidationSettings($0, path: path + ".validation_context", requireCA: true) }
        return try TLSContext(spec: self, certificates: pairs, validation: settings, stats: stats)
    }
}
