import ArgumentParser
import Foundation
import Logging
import MeshCA
import Synchronization

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

/// `meshd issue`: a workload certificate from meshd's CA written to files, for what needs one before it
/// can reach meshd (a proxy's client certificate for an mTLS xDS channel), in istio-agent's file names.
struct Issue: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a workload certificate from meshd's CA: cert-chain.pem, key.pem and root-cert.pem.")

    @OptionGroup var ca: CAOptions

    @Option(name: .customLong("namespace"), help: "The workload's namespace.")
    var namespace = "default"

    @Option(name: .customLong("service-account"), help: "The workload's service account.")
    var serviceAccount = "default"

    @Option(name: .customLong("dns-name"), help: "A DNS name to add as a SAN (repeatable), for servers.")
    var dnsNames: [String] = []

    @Option(name: .customLong("out-dir"), help: "Directory to write the files to.")
    var outDir: String

    func run() throws {
        if ca.caCert == nil, ca.stateDir == nil {
            throw ValidationError("give --state-dir (meshd's) or --ca-cert/--ca-key: a root made here would be thrown away")
        }
        let (authority, _) = try ca.load()
        let identity = SPIFFEID(trustDomain: ca.trustDomain, namespace: namespace, serviceAccount: serviceAccount)
        let issued = try authority.issue(for: identity, dnsNames: dnsNames, ttl: ca.ttlSeconds, now: Date())
        let directory = URL(fileURLWithPath: outDir)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(issued.certificateChainPEM.utf8).write(to: directory.appendingPathComponent("cert-chain.pem"))
        let key = directory.appendingPathComponent("key.pem")
        try Data(issued.privateKeyPEM.utf8).write(to: key)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: key.path)
        try Data(authority.rootCertificatePEM.utf8).write(to: directory.appendingPathComponent("root-cert.pem"))
        print("\(identity) valid until \(issued.notAfter), serial \(issued.serialNumber): \(outDir)/{cert-chain,key,root-cert}.pem")
    }
}

/// `meshd rotate-root`: a new root in the state directory; a running meshd rolls it out.
struct RotateRoot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rotate-root",
        abstract: "Replace the CA root in --state-dir; the old root stays trusted for --root-overlap.")

    @Option(name: .customLong("state-dir"), help: "meshd's state directory.")
    var stateDir: String

    @Option(name: .customLong("trust-domain"), help: "The SPIFFE trust domain.")
    var trustDomain = "cluster.local"

    @Option(name: .customLong("root-overlap"), help: "How long the old root stays trusted.")
    var rootOverlap = DurationArgument(argument: "24h")!

    func run() throws {
        let next = try CAStore.rotate(stateDirectory: stateDir, trustDomain: trustDomain, overlap: rootOverlap.seconds,
                                      now: Date())
        print("new root \(next.rootCertificate.serialNumber) in \(stateDir)/ca; the old one is trusted for \(rootOverlap.seconds) s more")
    }
}

/// Notices a new root in the state directory (written by `meshd rotate-root`).
final class RootWatch: Sendable {
    let stateDirectory: String
    let trustDomain: String
    private let known: Mutex<String>

    init(stateDirectory: String, trustDomain: String, known: String) {
        self.stateDirectory = stateDirectory
        self.trustDomain = trustDomain
        self.known = Mutex(known)
    }

    /// The new root and the previous roots still listed, once per change.
    func changed(logger: Logger) -> (ca: CertificateAuthority, previous: [PreviousRoot])? {
        let path = stateDirectory + "/ca/root-cert.pem"
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        let pem = String(decoding: data, as: UTF8.self)
        guard known.withLock({ $0 != pem }) else { return nil }
        do {
            let (ca, _) = try CAStore.load(certificatePath: nil, keyPath: nil, stateDirectory: stateDirectory,
                                           trustDomain: trustDomain, now: Date())
            known.withLock { $0 = pem }
            logger.info("new CA root in \(path)")
            return (ca, CAStore.previousRoots(stateDirectory: stateDirectory).filter { $0.trustedUntil > Date() })
        } catch {
            // Half-written, or a key for another certificate: looked at again on the next tick.
            logger.warning("cannot load the new CA root in \(path) yet: \(error)")
            return nil
        }
    }
}
