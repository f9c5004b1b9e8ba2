import NIOSSL
import ProxyCore

/// Envoy's `ssl.*` stats of one listener (`listener.<address>.ssl.`) or cluster (`cluster.<name>.ssl.`).
public final class TLSStats: Sendable {
    public let handshake, connectionError, noCertificate, failVerifyNoCert, failVerifyError, failVerifySAN: Counter
    private let versions: [TLSVersion: Counter]

    /// - Parameters:
    ///   - scope: `listener.127.0.0.1_10000` or `cluster.backend`.
    ///   - kind: `listener` or `cluster`, the stat's extracted prefix.
    ///   - tags: the scope's tags (`envoy_listener_address`, `envoy_cluster_name`).
    public init(scope: String, kind: String, tags: [StatTags.Tag], store: StatsStore) {
        func counter(_ stat: String, _ extra: [StatTags.Tag] = [], extracted: String? = nil) -> Counter {
            store.counter("\(scope).ssl.\(stat)",
                          StatTags(extractedName: "\(kind).ssl.\(extracted ?? stat)", tags: tags + extra))
        }
        handshake = counter("handshake")
        connectionError = counter("connection_error")
        noCertificate = counter("no_certificate")
        failVerifyNoCert = counter("fail_verify_no_cert")
        failVerifyError = counter("fail_verify_error")
        failVerifySAN = counter("fail_verify_san")
        _ = counter("fail_verify_cert_hash")
        _ = counter("session_reused")
        var versions: [TLSVersion: Counter] = [:]
        for (version, name) in [(TLSVersion.tlsv12, "TLSv1.2"), (.tlsv13, "TLSv1.3")] {
            versions[version] = counter("versions.\(name)", [StatTags.Tag("envoy_ssl_version", name)],
                                        extracted: "versions")
        }
        self.versions = versions
    }

    func countVersion(_ version: TLSVersion?) {
        guard let version else { return }
        versions[version]?.increment()
    }

    /// Classifies a failed handshake as Envoy counts it: a refused peer certificate under its
    /// `fail_verify_*` reason (the SAN check counts itself), anything else as `connection_error`.
    func countFailure(_ error: any Error) {
        let text = String(describing: error)
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || text.contains("CERTIFICATE_REQUIRED") {
            failVerifyNoCert.increment()
        } else if text.contains("CERTIFICATE_VERIFY_FAILED") {
            failVerifyError.increment()
        } else if !(error is TLSVerificationError), !text.contains(TLSVerificationError.subjectAltNameMismatch.description) {
            connectionError.increment()
        }
    }
}
