import Foundation
import GRPCCore
import Logging
import MeshCA
import XDSAPI

/// meshd's `istio.v1.auth.IstioCertificateService`: certifies a key a proxy made itself, so the key
/// never crosses the network. The caller is authenticated by its mTLS client certificate on the xDS
/// port (`--xds-mtls`) and may only ask for the identity that certificate proves.
public final class CertificateSigningService: Istio_V1_Auth_IstioCertificateService.SimpleServiceProtocol {
    let issuer: WorkloadIdentityIssuer
    let peerURIs: @Sendable (GRPCCore.ServerContext) -> [String]
    let logger: Logger

    public init(issuer: WorkloadIdentityIssuer, peerURIs: @escaping @Sendable (GRPCCore.ServerContext) -> [String],
                logger: Logger) {
        self.issuer = issuer
        self.peerURIs = peerURIs
        self.logger = logger
    }

    public func createCertificate(request: Istio_V1_Auth_IstioCertificateRequest,
                                  context: GRPCCore.ServerContext) async throws -> Istio_V1_Auth_IstioCertificateResponse {
        guard let caller = peerURIs(context).lazy.compactMap(SPIFFEID.init(uri:)).first else {
            logger.warning("CreateCertificate from \(context.remotePeer) refused: no client certificate")
            throw RPCError(code: .unauthenticated,
                           message: "CreateCertificate needs an mTLS client certificate from this CA (meshd --xds-mtls)")
        }
        let requested = request.validityDuration > 0 ? TimeInterval(request.validityDuration) : issuer.ttl
        let signer = issuer.signingRoot
        do {
            let signed = try signer.sign(csrPEM: request.csr, ttl: min(requested, issuer.ttl), now: Date()) { identity in
                guard identity == caller else {
                    throw RPCError(code: .permissionDenied, message: "\(caller) may not ask for a certificate for \(identity)")
                }
            }
            logger.info("signed a CSR for \(signed.identity) from \(context.remotePeer), valid until \(signed.notAfter)")
            var response = Istio_V1_Auth_IstioCertificateResponse()
            response.certChain = [signed.certificatePEM, signer.rootCertificatePEM]
            return response
        } catch let error as RPCError {
            logger.warning("CreateCertificate from \(caller) refused: \(error.message)")
            throw error
        } catch {
            logger.warning("CreateCertificate from \(caller) refused: \(error)")
            throw RPCError(code: .invalidArgument, message: "\(error)")
        }
    }
}
