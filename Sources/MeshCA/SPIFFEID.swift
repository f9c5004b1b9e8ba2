import X509

/// A workload identity as Istio names it: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
public struct SPIFFEID: Sendable, Hashable, CustomStringConvertible {
    public var trustDomain: String
    public var namespace: String
    public var serviceAccount: String

    public init(trustDomain: String, namespace: String, serviceAccount: String) {
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.serviceAccount = serviceAccount
    }

    /// Parses `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`; nil for any other shape.
    public init?(uri: String) {
        guard uri.hasPrefix("spiffe://") else { return nil }
        let parts = uri.dropFirst("spiffe://".count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[1] == "ns", parts[3] == "sa" else { return nil }
        self.init(trustDomain: String(parts[0]), namespace: String(parts[2]), serviceAccount: String(parts[4]))
        guard isWellFormed else { return nil }
    }

    public var uri: String { "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }
    public var description: String { uri }

    /// Whether the parts are usable in a URI path: no empty part, no `/`, no spaces or controls.
    public var isWellFormed: Bool {
        [trustDomain, namespace, serviceAccount].allSatisfy { part in
            !part.isEmpty && part.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && $0 != "/" }
        }
    }
}

extension SPIFFEID {
    /// The SPIFFE ID among a certificate's URI SANs (an mTLS peer's identity); nil when it has none.
    public init?(certificate: Certificate) {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        for case .uniformResourceIdentifier(let uri) in names {
            if let identity = SPIFFEID(uri: uri) {
                self = identity
                return
            }
        }
        return nil
    }
}
