import Foundation
import Logging
import MeshCA
import SwiftProtobuf
import Synchronization
import XDSAPI
import XDSResource

/// Gives every connected proxy its workload identity over SDS, as istiod does: a certificate for
/// `spiffe://<trust-domain>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>` (from the node's metadata) as the
/// secret `default`, and the root as `ROOTCA`, both scoped to that proxy's node id so no other proxy
/// is served them. Certificates are renewed at half-life and pushed like any other change.
public final class WorkloadIdentityIssuer: Sendable {
    public static let certificateSecretName = "default"
    public static let rootSecretName = "ROOTCA"

    private let ca: CertificateAuthority
    private let trustDomain: String
    public let ttl: TimeInterval
    private let cache: SnapshotCache
    private let logger: Logger
    private let issued = Mutex<[String: IssuedCertificate]>([:])

    public init(ca: CertificateAuthority, trustDomain: String, ttl: TimeInterval, cache: SnapshotCache,
                logger: Logger = Logger(label: "ca")) {
        self.ca = ca
        self.trustDomain = trustDomain
        self.ttl = ttl
        self.cache = cache
        self.logger = logger
    }

    /// The identity a node's metadata claims; Istio's defaults when a key is missing.
    public func identity(of node: Envoy_Config_Core_V3_Node) -> SPIFFEID {
        func field(_ key: String) -> String? {
            guard case .stringValue(let value)? = node.metadata.fields[key]?.kind, !value.isEmpty else { return nil }
            return value
        }
        return SPIFFEID(trustDomain: trustDomain, namespace: field("NAMESPACE") ?? "default",
                        serviceAccount: field("SERVICE_ACCOUNT") ?? "default")
    }

    /// A proxy's stream opened: issues its certificate unless it holds a current one for the same
    /// identity. Over an mTLS xDS channel the identity is the one its client certificate proves
    /// (`peerURIs`), whatever its metadata claims.
    public func nodeConnected(_ node: Envoy_Config_Core_V3_Node, peerURIs: [String] = [], now: Date = Date()) {
        guard !node.id.isEmpty else { return }
        var identity = identity(of: node)
        if let proven = peerURIs.lazy.compactMap(SPIFFEID.init(uri:)).first {
            if proven != identity {
                logger.warning("node \(node.id) claims \(identity) in its metadata but its client certificate is \(proven); issuing for \(proven)")
            }
            identity = proven
        }
        let current = issued.withLock { $0[node.id] }
        if let current, current.identity == identity, current.renewAt > now { return }
        do {
            let certificate = try ca.issue(for: identity, ttl: ttl, now: now)
            issued.withLock { $0[node.id] = certificate }
            logger.info("issued \(identity) to node \(node.id), serial \(certificate.serialNumber), valid until \(certificate.notAfter)")
            publish()
        } catch {
            logger.error("cannot issue a certificate for node \(node.id) (\(identity)): \(error)")
        }
    }

    /// Re-issues every certificate past half of its life; returns how many were renewed.
    @discardableResult
    public func renewDue(now: Date = Date()) -> Int {
        let due = issued.withLock { $0.filter { $0.value.renewAt <= now } }
        var renewed: [String: IssuedCertificate] = [:]
        for (node, old) in due {
            do {
                renewed[node] = try ca.issue(for: old.identity, ttl: ttl, now: now)
            } catch {
                logger.error("cannot renew the certificate of node \(node): \(error)")
            }
        }
        guard !renewed.isEmpty else { return 0 }
        issued.withLock { $0.merge(renewed) { _, new in new } }
        logger.info("renewed \(renewed.count) workload certificate(s)")
        publish()
        return renewed.count
    }

    /// The soonest renewal due, for the renewal timer.
    public var nextRenewal: Date? { issued.withLock { $0.values.map(\.renewAt).min() } }

    public func certificate(ofNode id: String) -> IssuedCertificate? { issued.withLock { $0[id] } }

    private func publish() {
        let all = issued.withLock { $0 }
        var resources: [VersionedResource] = []
        for (node, certificate) in all.sorted(by: { $0.key < $1.key }) {
            var workload = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
            workload.name = Self.certificateSecretName
            workload.tlsCertificate.certificateChain.inlineString = certificate.certificateChainPEM
            workload.tlsCertificate.privateKey.inlineString = certificate.privateKeyPEM
            var root = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
            root.name = Self.rootSecretName
            root.validationContext.trustedCa.inlineString = ca.rootCertificatePEM
            for secret in [workload, root] {
                guard let any = try? Google_Protobuf_Any(message: secret),
                      let version = try? ContentHash.version(of: secret) else { continue }
                resources.append(VersionedResource(typeURL: TypeURL.secret, name: secret.name, version: version,
                                                   resource: any, file: "<meshd CA>", line: nil, scope: .nodeID(node)))
            }
        }
        cache.updateIssued(resources)
    }
}
