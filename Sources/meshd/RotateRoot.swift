import ArgumentParser
import Foundation
import Logging
import MeshCA
import Synchronization

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
