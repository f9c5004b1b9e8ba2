import GRPCCore
import GRPCNIOTransportHTTP2Posix
import GRPCProtobuf
import XDSAPI

/// Asks the management server's `IstioCertificateService` to certify a locally made key: one
/// `CreateCertificate` call over its own connection, with the xDS channel's TLS (the client certificate
/// there is what authenticates the request).
public enum CertificateSigningClient {
    /// The certificate chain (workload certificate first, root last) for `csrPEM`.
    public static func createCertificate(host: String, port: Int, tls: ADSClientTLS?, csrPEM: String,
                                         validitySeconds: Int64) async throws -> [String] {
        var config = HTTP2ClientTransport.Posix.Config.defaults
        if let name = tls?.serverName { config.http2.authority = name }
        let transport = try HTTP2ClientTransport.Posix(
            target: ADSClient<HTTP2ClientTransport.Posix>.target(host: host, port: port),
            transportSecurity: tls?.transportSecurity ?? .plaintext, config: config)
        var request = Istio_V1_Auth_IstioCertificateRequest()
        request.csr = csrPEM
        request.validityDuration = validitySeconds
        return try await withGRPCClient(transport: transport) { client in
            let service = Istio_V1_Auth_IstioCertificateService.Client(wrapping: client)
            var options = CallOptions.defaults
            options.timeout = .seconds(10)
            return try await service.createCertificate(request, options: options).certChain
        }
    }
}
