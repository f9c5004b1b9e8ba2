import ArgumentParser
import Foundation
import ProxyServer
import XDSResource

/// meshproxy: an Envoy-compatible L7 proxy. Flags are Envoy's.
@main
struct Meshproxy: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshproxy",
        abstract: "An Envoy-compatible HTTP proxy, configured by an Envoy v3 bootstrap.")

    @Option(name: [.customShort("c"), .customLong("config-path")], help: "Path to the Envoy bootstrap (YAML or JSON).")
    var configPath: String?

    @Option(name: .customLong("config-yaml"), help: "Bootstrap YAML, merged over --config-path.")
    var configYAML: String?

    @Option(name: .customLong("concurrency"), help: "Number of worker event loops (default: CPU cores).")
    var concurrency: Int?

    @Option(name: [.customShort("l"), .customLong("log-level")], help: "trace, debug, info, warning, error, critical, off.")
    var logLevel: String = "info"

    @Option(name: .customLong("service-node"), help: "Overrides node.id.")
    var serviceNode: String?

    @Option(name: .customLong("service-cluster"), help: "Overrides node.cluster.")
    var serviceCluster: String?

    @Option(name: .customLong("service-zone"), help: "Overrides node.locality.zone.")
    var serviceZone: String?

    @Option(name: .customLong("drain-time-s"), help: "Seconds to let requests in flight finish on shutdown.")
    var drainTimeSeconds: Int = 600

    @Option(name: .customLong("file-flush-interval-msec"), help: "How often access logs are flushed, in milliseconds.")
    var fileFlushIntervalMilliseconds: Int = 10_000

    @Flag(name: .customLong("workload-cert-from-csr"), help: "Make the workload key (SDS secret 'default') here and have meshd certify it by CSR, renewing at half-life; needs an mTLS xDS cluster.")
    var workloadCertFromCSR = false

    @Option(name: .customLong("parent-shutdown-time-s"), help: "Accepted for Envoy compatibility; hot restart is not supported.")
    var parentShutdownTimeSeconds: Int?

    @Option(name: .customLong("base-id"), help: "Accepted for Envoy compatibility; hot restart is not supported.")
    var baseID: Int = 0

    @Option(name: .customLong("mode"), help: "serve, validate, or init_only.")
    var mode: String = "serve"

    @Flag(name: .customLong("disable-hot-restart"), help: "Accepted for Envoy compatibility.")
    var disableHotRestart = false

    @Flag(name: .customLong("use-dynamic-base-id"), help: "Accepted for Envoy compatibility.")
    var useDynamicBaseID = false

    mutating func run() throws {
        guard let serverMode = ServerOptions.Mode(rawValue: mode) else {
            throw ValidationError("--mode must be serve, validate or init_only")
        }
        guard let level = LogLevels.parse(logLevel) else {
            throw ValidationError("unknown --log-level '\(logLevel)'")
        }
        LogLevels.bootstrap()
        LogLevels.shared.setAll(level)
        let options = ServerOptions(
            configPath: configPath, configYAML: configYAML,
            concurrency: concurrency ?? ProcessInfo.processInfo.activeProcessorCount,
            logLevel: logLevel, serviceNode: serviceNode, serviceCluster: serviceCluster, serviceZone: serviceZone,
            drainTimeSeconds: drainTimeSeconds, baseID: baseID, mode: serverMode,
            fileFlushIntervalMilliseconds: max(1, fileFlushIntervalMilliseconds), workloadCertFromCSR: workloadCertFromCSR)
        let configName = configPath ?? "--config-yaml"
        let server: Server
        do {
            let bootstrap = try BootstrapLoader.load(options)
            server = try Server(options: options, bootstrap: bootstrap, bind: serverMode == .serve)
        } catch {
            if serverMode == .validate {
                print("error initializing configuration '\(configName)': \(error)")
            } else {
                FileHandle.standardError.write(Data("error initializing configuration '\(configName)': \(error)\n".utf8))
            }
            throw ExitCode(1)
        }
        if serverMode != .serve {
            print("configuration '\(configName)' OK")
            return
        }
        do {
            try server.start()
        } catch {
            FileHandle.standardError.write(Data("error initializing configuration '\(configName)': \(error)\n".utf8))
            throw ExitCode(1)
        }
        try server.runUntilShutdown()
    }
}
