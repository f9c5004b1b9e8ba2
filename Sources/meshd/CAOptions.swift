import ArgumentParser
import Foundation
import MeshCA

/// The CA's flags, shared by `serve` and `issue`.
struct CAOptions: ParsableArguments {
    @Option(name: .customLong("trust-domain"), help: "The SPIFFE trust domain of issued workload certificates.")
    var trustDomain = "cluster.local"

    @Option(name: .customLong("ca-cert"), help: "PEM root certificate to issue from (with --ca-key).")
    var caCert: String?

    @Option(name: .customLong("ca-key"), help: "PEM private key of --ca-cert.")
    var caKey: String?

    @Option(name: .customLong("state-dir"), help: "Where meshd keeps its CA root between restarts.")
    var stateDir: String?

    @Option(name: .customLong("workload-cert-ttl"), help: "Lifetime of issued workload certificates (renewed at half-life).")
    var workloadCertTTL = DurationArgument(argument: "24h")!

    var ttlSeconds: TimeInterval { workloadCertTTL.seconds }

    func load() throws -> (CertificateAuthority, origin: String) {
        try CAStore.load(certificatePath: caCert, keyPath: caKey, stateDirectory: stateDir, trustDomain: trustDomain,
                         now: Date())
    }
}
