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

    public var uri: String { "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)" }
    public var description: String { uri }

    /// Whether the parts are usable in a URI path: no empty part, no `/`, no spaces or controls.
    public var isWellFormed: Bool {
        [trustDomain, namespace, serviceAccount].allSatisfy { part in
            !part.isEmpty && part.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && $0 != "/" }
        }
    }
}
