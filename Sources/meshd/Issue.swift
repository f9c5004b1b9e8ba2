import ArgumentParser
import Foundation
import MeshCA

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
