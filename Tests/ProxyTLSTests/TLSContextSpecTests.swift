import Foundation
import NIOSSL
import ProxyCore
import ProxyTLS
import Testing
import XDSAPI
import XDSResource

@Suite struct TLSContextSpecTests {
    func downstream(_ configure: (inout DownstreamTlsContextProto) -> Void) throws -> TLSContextSpec {
        var proto = DownstreamTlsContextProto()
        configure(&proto)
        return try TLSContextSpec(downstream: proto, path: "tls")
    }

    func reference(_ name: String, _ source: ((inout Envoy_Config_Core_V3_ConfigSource) -> Void)? = nil)
        -> Envoy_Extensions_TransportSockets_Tls_V3_SdsSecretConfig
    {
        var config = Envoy_Extensions_TransportSockets_Tls_V3_SdsSecretConfig()
        config.name = name
        if let source { source(&config.sdsConfig) }
        return config
    }

    @Test func aServerNeedsACertificate() {
        #expect(throws: FieldError.self) { try downstream { _ in } }
    }

    @Test func secretReferencesSayWhereTheSecretComesFrom() throws {
        let spec = try downstream {
            $0.commonTlsContext.tlsCertificateSdsSecretConfigs = [reference("default") { $0.ads = .init() }]
            $0.commonTlsContext.validationContextSdsSecretConfig = reference("ROOTCA") { $0.pathConfigSource.path = "/etc/sds/root.yaml" }
        }
        #expect(spec.secretReferences.map(\.key) == ["default", "/etc/sds/root.yaml#ROOTCA"])
        #expect(spec.secretReferences.allSatisfy { $0.dynamic })
        let stats = TLSStats(scope: "listener.test", kind: "listener", tags: [], store: StatsStore())
        #expect(try spec.build(secrets: [:], stats: stats) == nil, "waits for dynamic secrets")
        let staticOnly = try downstream { $0.commonTlsContext.tlsCertificateSdsSecretConfigs = [reference("missing")] }
        #expect(throws: FieldError.self) { try staticOnly.build(secrets: [:], stats: stats) }
    }

    @Test func refusedSettingsAreNamed() throws {
        #expect(throws: FieldError.self) {
            try downstream {
                $0.commonTlsContext.tlsCertificateSdsSecretConfigs = [reference("a")]
                $0.requireClientCertificate.value = true
            }
        }
        #expect(throws: FieldError.self) {
            try downstream {
                $0.commonTlsContext.tlsCertificateSdsSecretConfigs = [reference("a") { $0.apiConfigSource.apiType = .grpc }]
            }
        }
        #expect(throws: FieldError.self) {
            try downstream {
                $0.commonTlsContext.tlsCertificateSdsSecretConfigs = [reference("a")]
                $0.commonTlsContext.tlsParams.tlsMinimumProtocolVersion = .tlsv13
                $0.commonTlsContext.tlsParams.tlsMaximumProtocolVersion = .tlsv12
            }
        }
        #expect(throws: FieldError.self) {
            try downstream {
                $0.commonTlsContext.tlsCertificateSdsSecretConfigs = [reference("a")]
                var matcher = Envoy_Extensions_TransportSockets_Tls_V3_SubjectAltNameMatcher()
                matcher.sanType = .uri
                matcher.matcher.exact = "spiffe://x"
                $0.commonTlsContext.validationContext.matchTypedSubjectAltNames = [matcher]
            }
        }
    }

    @Test func transportSocketTypes() throws {
        var socket = Envoy_Config_Core_V3_TransportSocket()
        socket.name = "envoy.transport_sockets.raw_buffer"
        #expect(try TLSContextSpec.transportSocket(socket, side: .server, path: "t") == nil)
        socket.typedConfig.typeURL = TLSContextSpec.upstreamTypeURL
        #expect(throws: FieldError.self) { try TLSContextSpec.transportSocket(socket, side: .server, path: "t") }
    }
}
