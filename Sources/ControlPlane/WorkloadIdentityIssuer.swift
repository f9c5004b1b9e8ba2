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
///
/// A new root rolls out in two steps so no proxy ever meets a certificate it cannot verify: first
/// every proxy's `ROOTCA` trusts both roots while certificates still come from the old one; after
/// the grace period every certificate is re-issued from the new root. The old root stays in the
/// bundle until its `trustedUntil`.
public final class WorkloadIdentityIssuer: Sendable {
    public static let certificateSecretName = "default"
    public static let rootSecretName = "ROOTCA"

    private struct State {
        var signer: CertificateAuthority
        /// A new root waiting for its grace period to pass before it signs.
        var pending: (ca: CertificateAuthority, signsFrom: Date)?
        var previous: [PreviousRoot] = []
        var issued: [String: IssuedCertificate] = [:]
    }

    private let trustDomain: String
    public let ttl: TimeInterval
    private let cache: SnapshotCache
    private let logger: Logger
    private let state: Mutex<State>
    /// Each node's secrets as last packed, kept while its certificate and the trust bundle stay the
    /// same: a proxy connecting packs its own secrets, not every proxy's again.
    private let packed = Mutex<PackedSecrets>(PackedSecrets())

    private struct PackedSecrets {
        var bundle = ""
        /// `ROOTCA` as packed for the current bundle: the same bytes for every node, kept once.
        var root: (resource: Google_Protobuf_Any, version: String)?
        var byNode: [String: (serialNumber: [UInt8], resources: [VersionedResource])] = [:]
    }

    public init(ca: CertificateAuthority, trustDomain: String, ttl: TimeInterval, cache: SnapshotCache,
                previousRoots: [PreviousRoot] = [], logger: Logger = Logger(label: "ca")) {
        self.trustDomain = trustDomain
        self.ttl = ttl
        self.cache = cache
        self.logger = logger
        self.state = Mutex(State(signer: ca, previous: previousRoots))
    }

    /// The root that signs now.
    public var signingRoot: CertificateAuthority { state.withLock { $0.signer } }

    /// Starts a rotation to `next`: trusted by every proxy at once, signing after `grace`.
    public func rotate(to next: CertificateAuthority, previousRoots: [PreviousRoot], grace: TimeInterval, now: Date = Date()) {
        state.withLock { state in
            state.pending = (next, now.addingTimeInterval(grace))
            state.previous = previousRoots
        }
        logger.info("new CA root: trusted now, signing from \(now.addingTimeInterval(grace))")
        publish(now: now)
    }

    /// Moves a pending root to signing when its grace period is over (re-issuing every certificate),
    /// drops previous roots whose overlap ended, and renews what is due.
    public func tick(now: Date = Date()) {
        let (switched, expired) = state.withLock { state -> (Bool, Bool) in
            var switched = false
            if let pending = state.pending, pending.signsFrom <= now {
                state.signer = pending.ca
                state.pending = nil
                switched = true
            }
            let before = state.previous.count
            state.previous.removeAll { $0.trustedUntil <= now }
            return (switched, state.previous.count != before)
        }
        if switched { logger.info("the new CA root signs now; re-issuing every workload certificate") }
        // After a switch, everything the old root signed is due.
        let renewed = switched ? renew(now: now) { _ in true } : renewDue(now: now)
        if renewed == 0, switched || expired { publish(now: now) }
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
        let (current, signer) = state.withLock { ($0.issued[node.id], $0.signer) }
        if let current, current.identity == identity, current.renewAt > now { return }
        do {
            let certificate = try signer.issue(for: identity, ttl: ttl, now: now)
            state.withLock { $0.issued[node.id] = certificate }
            logger.info("issued \(identity) to node \(node.id), serial \(certificate.serialNumber), valid until \(certificate.notAfter)")
            publish(now: now)
        } catch {
            logger.error("cannot issue a certificate for node \(node.id) (\(identity)): \(error)")
        }
    }

    /// Re-issues every certificate past half of its life; returns how many were renewed.
    @discardableResult
    public func renewDue(now: Date = Date()) -> Int {
        renew(now: now) { $0.renewAt <= now }
    }

    private func renew(now: Date, _ isDue: (IssuedCertificate) -> Bool) -> Int {
        let (due, signer) = state.withLock { state in (state.issued.filter { isDue($0.value) }, state.signer) }
        var renewed: [String: IssuedCertificate] = [:]
        for (node, old) in due {
            do {
                renewed[node] = try signer.issue(for: old.identity, ttl: ttl, now: now)
            } catch {
                logger.error("cannot renew the certificate of node \(node): \(error)")
            }
        }
        guard !renewed.isEmpty else { return 0 }
        state.withLock { $0.issued.merge(renewed) { _, new in new } }
        logger.info("renewed \(renewed.count) workload certificate(s)")
        publish(now: now)
        return renewed.count
    }

    /// The soonest renewal, root switch or end of an overlap, for the timer.
    public var nextRenewal: Date? {
        state.withLock { state in
            (state.issued.values.map(\.renewAt) + [state.pending?.signsFrom].compactMap { $0 }
                + state.previous.map(\.trustedUntil)).min()
        }
    }

    public func certificate(ofNode id: String) -> IssuedCertificate? { state.withLock { $0.issued[id] } }

    /// The roots proxies trust now, in PEM: the signing root, a pending one, and previous ones in their overlap.
    public func trustBundlePEM(now: Date = Date()) -> String {
        let roots = state.withLock { state -> [String] in
            [state.signer.rootCertificatePEM] + [state.pending?.ca.rootCertificatePEM].compactMap { $0 }
                + state.previous.filter { $0.trustedUntil > now }.map(\.certificatePEM)
        }
        var unique: [String] = []
        for pem in roots.map({ $0.hasSuffix("\n") ? $0 : $0 + "\n" }) where !unique.contains(pem) { unique.append(pem) }
        return unique.joined()
    }

    private func publish(now: Date) {
        // Under one lock from reading the certificates to publishing them: two nodes connecting at once
        // must not publish in the wrong order, the later publication missing the other's secrets.
        packed.withLock { packed in
            let all = state.withLock { $0.issued }
            let bundle = trustBundlePEM(now: now)
            if packed.bundle != bundle || packed.root == nil {
                packed.bundle = bundle
                packed.byNode = [:]
                var root = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
                root.name = Self.rootSecretName
                root.validationContext.trustedCa.inlineString = bundle
                packed.root = try? ContentHash.packed(root, typeURL: TypeURL.secret)
            }
            var byNode: [String: [VersionedResource]] = [:]
            for (node, certificate) in all {
                if let done = packed.byNode[node], done.serialNumber == certificate.serialNumberBytes {
                    byNode[node] = done.resources
                    continue
                }
                let resources = Self.secrets(certificate, root: packed.root, node: node)
                packed.byNode[node] = (certificate.serialNumberBytes, resources)
                byNode[node] = resources
            }
            packed.byNode = packed.byNode.filter { all[$0.key] != nil }
            cache.updateIssued(byNode)
        }
    }

    /// A node's `default` and `ROOTCA` secrets, packed (`ROOTCA`'s bytes shared by every node).
    private static func secrets(_ certificate: IssuedCertificate, root: (resource: Google_Protobuf_Any, version: String)?,
                                node: String) -> [VersionedResource] {
        var workload = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
        workload.name = certificateSecretName
        workload.tlsCertificate.certificateChain.inlineString = certificate.certificateChainPEM
        workload.tlsCertificate.privateKey.inlineString = certificate.privateKeyPEM
        // Kept for as long as the node is known: two entries in room for two.
        var resources: [VersionedResource] = []
        resources.reserveCapacity(2)
        for (name, packed) in [(workload.name, try? ContentHash.packed(workload, typeURL: TypeURL.secret)),
                               (rootSecretName, root)] {
            guard let (any, version) = packed else { continue }
            resources.append(VersionedResource(typeURL: TypeURL.secret, name: name, version: version, resource: any,
                                               file: "<meshd CA>", line: nil, scope: .nodeID(node)))
        }
        return resources
    }
}
