import ControlPlane
import Foundation
import MeshCA
import SwiftProtobuf
import Testing
import XDSAPI
import XDSResource

@Suite struct WorkloadIdentityIssuerTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    func node(_ id: String, namespace: String? = nil, serviceAccount: String? = nil) -> Envoy_Config_Core_V3_Node {
        var node = Envoy_Config_Core_V3_Node()
        node.id = id
        node.cluster = "c"
        if let namespace { node.metadata.fields["NAMESPACE"] = Google_Protobuf_Value(stringValue: namespace) }
        if let serviceAccount { node.metadata.fields["SERVICE_ACCOUNT"] = Google_Protobuf_Value(stringValue: serviceAccount) }
        return node
    }

    func secrets(_ cache: SnapshotCache, node id: String) throws -> [String: Envoy_Extensions_TransportSockets_Tls_V3_Secret] {
        try cache.snapshot(for: NodeIdentity(id: id, cluster: "c")).resources(ofType: TypeURL.secret)
            .mapValues { try Envoy_Extensions_TransportSockets_Tls_V3_Secret(unpackingAny: $0.resource) }
    }

    @Test func eachNodeIsServedOnlyItsOwnIdentity() throws {
        let cache = SnapshotCache()
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: start)
        let issuer = WorkloadIdentityIssuer(ca: ca, trustDomain: "cluster.local", ttl: 3600, cache: cache)
        issuer.nodeConnected(node("a-1", namespace: "shop", serviceAccount: "cart"), now: start)
        issuer.nodeConnected(node("b-1"), now: start)
        #expect(issuer.certificate(ofNode: "a-1")?.identity.uri == "spiffe://cluster.local/ns/shop/sa/cart")
        #expect(issuer.certificate(ofNode: "b-1")?.identity.uri == "spiffe://cluster.local/ns/default/sa/default")

        let served = try secrets(cache, node: "a-1")
        #expect(Set(served.keys) == ["default", "ROOTCA"])
        #expect(served["default"]?.tlsCertificate.certificateChain.inlineString == issuer.certificate(ofNode: "a-1")?.certificateChainPEM)
        #expect(served["ROOTCA"]?.validationContext.trustedCa.inlineString.trimmingCharacters(in: .newlines)
            == ca.rootCertificatePEM.trimmingCharacters(in: .newlines))
        #expect(try secrets(cache, node: "stranger").isEmpty)
        #expect(try secrets(cache, node: "b-1")["default"] != served["default"])
    }

    @Test func reconnectingKeepsACurrentCertificateAndRenewalFollowsTheClock() throws {
        let cache = SnapshotCache()
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: start)
        let issuer = WorkloadIdentityIssuer(ca: ca, trustDomain: "cluster.local", ttl: 100, cache: cache)
        issuer.nodeConnected(node("a-1"), now: start)
        let first = try #require(issuer.certificate(ofNode: "a-1"))
        issuer.nodeConnected(node("a-1"), now: start.addingTimeInterval(10))
        #expect(issuer.certificate(ofNode: "a-1") == first)
        #expect(issuer.nextRenewal == start.addingTimeInterval(50))
        #expect(issuer.renewDue(now: start.addingTimeInterval(49)) == 0)
        let generation = cache.generation
        #expect(issuer.renewDue(now: start.addingTimeInterval(50)) == 1)
        #expect(cache.generation > generation)
        let renewed = try #require(issuer.certificate(ofNode: "a-1"))
        #expect(renewed.serialNumber != first.serialNumber)
        #expect(try secrets(cache, node: "a-1")["default"]?.tlsCertificate.certificateChain.inlineString == renewed.certificateChainPEM)
        // A changed identity is re-issued at once.
        issuer.nodeConnected(node("a-1", serviceAccount: "other"), now: start.addingTimeInterval(51))
        #expect(issuer.certificate(ofNode: "a-1")?.identity.serviceAccount == "other")
    }

    @Test func aClientCertificateOutranksTheMetadata() throws {
        let cache = SnapshotCache()
        let ca = try CertificateAuthority(trustDomain: "cluster.local", now: start)
        let issuer = WorkloadIdentityIssuer(ca: ca, trustDomain: "cluster.local", ttl: 100, cache: cache)
        issuer.nodeConnected(node("a-1", namespace: "shop", serviceAccount: "admin"),
                             peerURIs: ["https://not-spiffe", "spiffe://cluster.local/ns/shop/sa/web"], now: start)
        #expect(issuer.certificate(ofNode: "a-1")?.identity.uri == "spiffe://cluster.local/ns/shop/sa/web")
    }

    @Test func aNewRootIsTrustedFirstThenSignsThenTheOldOneLeaves() throws {
        let cache = SnapshotCache()
        let old = try CertificateAuthority(trustDomain: "cluster.local", now: start)
        let new = try CertificateAuthority(trustDomain: "cluster.local", now: start)
        let issuer = WorkloadIdentityIssuer(ca: old, trustDomain: "cluster.local", ttl: 3600, cache: cache)
        issuer.nodeConnected(node("a-1"), now: start)
        let first = try #require(issuer.certificate(ofNode: "a-1"))
        func rootsServed() throws -> Int {
            let bundle = try secrets(cache, node: "a-1")["ROOTCA"]?.validationContext.trustedCa.inlineString ?? ""
            return bundle.components(separatedBy: "BEGIN CERTIFICATE").count - 1
        }
        issuer.rotate(to: new, previousRoots: [PreviousRoot(certificatePEM: old.rootCertificatePEM,
                                                            trustedUntil: start.addingTimeInterval(100))],
                      grace: 10, now: start)
        #expect(try rootsServed() == 2, "the old root (signing, and previous) and the pending new one")
        issuer.tick(now: start.addingTimeInterval(5))
        #expect(issuer.certificate(ofNode: "a-1") == first, "the old root signs during the grace period")
        issuer.tick(now: start.addingTimeInterval(10))
        let renewed = try #require(issuer.certificate(ofNode: "a-1"))
        #expect(renewed.serialNumber != first.serialNumber)
        #expect(issuer.signingRoot.rootCertificate == new.rootCertificate)
        #expect(try rootsServed() == 2, "the new root, and the old one in its overlap")
        issuer.tick(now: start.addingTimeInterval(100))
        #expect(try rootsServed() == 1)
        #expect(issuer.trustBundlePEM(now: start.addingTimeInterval(100)).trimmingCharacters(in: .newlines)
            == new.rootCertificatePEM.trimmingCharacters(in: .newlines))
    }
}
