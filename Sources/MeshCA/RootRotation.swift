import Foundation
import X509

/// A root that was replaced and is still trusted until `trustedUntil`, so certificates it signed keep
/// verifying while the mesh moves to the new root.
public struct PreviousRoot: Sendable, Equatable {
    public var certificatePEM: String
    public var trustedUntil: Date

    public init(certificatePEM: String, trustedUntil: Date) {
        self.certificatePEM = certificatePEM
        self.trustedUntil = trustedUntil
    }
}

extension CAStore {
    static let previousRootsFile = "previous-roots.json"

    /// `meshd rotate-root`: a new root replaces the state directory's, and the old one stays trusted for
    /// `overlap`. A running meshd sees the change and rolls it out (trust first, then new certificates).
    @discardableResult
    public static func rotate(stateDirectory: String, trustDomain: String, overlap: TimeInterval,
                              now: Date) throws -> CertificateAuthority {
        let (current, _) = try load(certificatePath: nil, keyPath: nil, stateDirectory: stateDirectory,
                                    trustDomain: trustDomain, now: now)
        let directory = URL(fileURLWithPath: stateDirectory).appendingPathComponent("ca")
        var previous = previousRoots(stateDirectory: stateDirectory).filter { $0.trustedUntil > now }
        previous.append(PreviousRoot(certificatePEM: current.rootCertificatePEM, trustedUntil: now.addingTimeInterval(overlap)))
        let next = try CertificateAuthority(trustDomain: trustDomain, now: now)
        let entries = previous.map { ["certificate": $0.certificatePEM, "trusted_until": ISO8601DateFormatter().string(from: $0.trustedUntil)] }
        try JSONSerialization.data(withJSONObject: entries, options: [.prettyPrinted, .sortedKeys])
            .write(to: directory.appendingPathComponent(previousRootsFile), options: .atomic)
        // The key first: a reader that sees the new certificate finds its key.
        let keyURL = directory.appendingPathComponent("root-key.pem")
        try Data(next.rootKeyPEM.utf8).write(to: keyURL, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyURL.path)
        try Data(next.rootCertificatePEM.utf8).write(to: directory.appendingPathComponent("root-cert.pem"), options: .atomic)
        return next
    }

    /// The replaced roots a state directory still lists (expired ones included; callers filter by date).
    public static func previousRoots(stateDirectory: String) -> [PreviousRoot] {
        let url = URL(fileURLWithPath: stateDirectory).appendingPathComponent("ca").appendingPathComponent(previousRootsFile)
        guard let data = FileManager.default.contents(atPath: url.path),
              let entries = try? JSONSerialization.jsonObject(with: data) as? [[String: String]] else { return [] }
        let dates = ISO8601DateFormatter()
        return entries.compactMap { entry in
            guard let pem = entry["certificate"], let until = entry["trusted_until"].flatMap(dates.date(from:)) else { return nil }
            return PreviousRoot(certificatePEM: pem, trustedUntil: until)
        }
    }
}
