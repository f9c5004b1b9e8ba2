import Foundation

/// Where meshd's root comes from: `--ca-cert`/`--ca-key` when given; otherwise the state
/// directory's `ca/root-cert.pem` and `ca/root-key.pem`, made on first start (key readable by its
/// owner only); otherwise a root that lives as long as the process.
public enum CAStore {
    public static func load(certificatePath: String?, keyPath: String?, stateDirectory: String?,
                            trustDomain: String, now: Date) throws -> (CertificateAuthority, origin: String) {
        switch (certificatePath, keyPath) {
        case (let cert?, let key?):
            return (try CertificateAuthority(certificatePEM: try read(cert), keyPEM: try read(key)), cert)
        case (nil, nil): break
        default: throw CAError("--ca-cert and --ca-key go together")
        }
        guard let stateDirectory else {
            return (try CertificateAuthority(trustDomain: trustDomain, now: now), "in memory (no --state-dir)")
        }
        let directory = URL(fileURLWithPath: stateDirectory).appendingPathComponent("ca")
        let certURL = directory.appendingPathComponent("root-cert.pem")
        let keyURL = directory.appendingPathComponent("root-key.pem")
        if FileManager.default.fileExists(atPath: certURL.path) {
            return (try CertificateAuthority(certificatePEM: try read(certURL.path), keyPEM: try read(keyURL.path)),
                    certURL.path)
        }
        let ca = try CertificateAuthority(trustDomain: trustDomain, now: now)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(ca.rootKeyPEM.utf8).write(to: keyURL, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyURL.path)
        try Data(ca.rootCertificatePEM.utf8).write(to: certURL, options: .atomic)
        return (ca, certURL.path + " (new)")
    }

    private static func read(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw CAError("cannot read \(path)") }
        return String(decoding: data, as: UTF8.self)
    }
}
