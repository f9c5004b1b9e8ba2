import ArgumentParser
import ControlPlane
import MeshCA
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
import XDSAPI

/// meshd: an xDS control plane serving Envoy v3 resource files over ADS.
@main
struct Meshd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshd",
        abstract: "Serves a directory of Envoy v3 resource files to proxies over ADS (SotW and delta).",
        subcommands: [Serve.self, Validate.self, Status.self, Issue.self, RotateRoot.self],
        defaultSubcommand: Serve.self)
}

/// `host:port` as a flag value.
struct HostPort: ExpressibleByArgument, Sendable {
    var host: String
    var port: Int

    init?(argument: String) {
        guard let colon = argument.lastIndex(of: ":"), let port = Int(argument[argument.index(after: colon)...]) else {
            return nil
        }
        host = String(argument[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        self.port = port
    }
}

/// Durations as `100ms`, `1s`, `2.5s`.
struct DurationArgument: ExpressibleByArgument, Sendable {
    var duration: Duration

    var seconds: TimeInterval {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    init?(argument: String) {
        if argument.hasSuffix("ms"), let value = Double(argument.dropLast(2)) {
            duration = .milliseconds(value)
        } else if argument.hasSuffix("s"), let value = Double(argument.dropLast()) {
            duration = .milliseconds(value * 1000)
        } else if argument.hasSuffix("m"), let value = Double(argument.dropLast()) {
            duration = .seconds(value * 60)
        } else if argument.hasSuffix("h"), let value = Double(argument.dropLast()) {
            duration = .seconds(value * 3600)
        } else {
            return nil
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Watch DIR and serve it over ADS (the default).")

    @Option(name: .customLong("config-dir"), help: "Directory of resource files (*.yaml, *.yml, *.json).")
    var configDir: String

    @Option(name: .customLong("xds-address"), help: "Where the ADS gRPC server listens.")
    var xdsAddress = HostPort(argument: "127.0.0.1:18000")!

    @Option(name: .customLong("admin-address"), help: "Where /debug/syncz, /debug/config_dump, /metrics and /ready listen.")
    var adminAddress = HostPort(argument: "127.0.0.1:18080")!

    @Option(name: .customLong("debounce-after"), help: "Quiet period after a file change before pushing.")
    var debounceAfter = DurationArgument(argument: "100ms")!

    @Option(name: .customLong("debounce-max"), help: "Longest a push waits while files keep changing.")
    var debounceMax = DurationArgument(argument: "1s")!

    @Option(name: .customLong("log-level"), help: "trace, debug, info, warning, error, critical.")
    var logLevel = "info"

    @OptionGroup var ca: CAOptions

    @Flag(name: .customLong("disable-ca"), help: "Do not issue workload certificates over SDS.")
    var disableCA = false

    @Option(name: .customLong("root-rotation-grace"), help: "After `meshd rotate-root`, how long proxies get to trust the new root before it signs.")
    var rootRotationGrace = DurationArgument(argument: "30s")!

    @Flag(name: .customLong("xds-tls"), help: "Serve ADS over TLS, with --xds-cert/--xds-key or a certificate from meshd's CA.")
    var xdsTLS = false

    @Flag(name: .customLong("xds-mtls"), help: "Serve ADS over mutual TLS: proxies present a certificate from meshd's CA, and their identity is the one it proves.")
    var xdsMTLS = false

    @Option(name: .customLong("xds-cert"), help: "PEM certificate chain for the ADS port (with --xds-key).")
    var xdsCert: String?

    @Option(name: .customLong("xds-key"), help: "PEM private key of --xds-cert.")
    var xdsKey: String?

    func run() async throws {
        MallocTuning.apply()
        var logger = Logger(label: "meshd")
        logger.logLevel = Logger.Level(rawValue: logLevel == "warn" ? "warning" : logLevel) ?? .info
        let cache = SnapshotCache()
        let registry = SyncRegistry()
        let metrics = ControlPlaneMetrics()
        let lastState = Mutex<SourceState?>(nil)
        let watcher = ConfigWatcher(source: FileSource(directory: configDir), cache: cache, metrics: metrics,
                                    debounceAfter: debounceAfter.duration, debounceMax: debounceMax.duration,
                                    logger: logger, onReload: { state in lastState.withLock { $0 = state } })
        watcher.reloadNow()

        let admin = ControlPlaneAdmin(cache: cache, registry: registry, metrics: metrics,
                                      lastReload: { lastState.withLock { $0 } })
        let adminChannel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(ControlPlaneHTTPHandler(admin: admin))
                }
            }
            .bind(host: adminAddress.host, port: adminAddress.port).get()

        var issuer: WorkloadIdentityIssuer?
        var authority: CertificateAuthority?
        if !disableCA || xdsMTLS || (xdsTLS && xdsCert == nil) {
            let (loaded, origin) = try ca.load()
            authority = loaded
            logger.info("CA root from \(origin)")
        }
        if !disableCA, let authority {
            let previous = ca.stateDir.map { CAStore.previousRoots(stateDirectory: $0).filter { $0.trustedUntil > Date() } } ?? []
            issuer = WorkloadIdentityIssuer(ca: authority, trustDomain: ca.trustDomain, ttl: ca.ttlSeconds, cache: cache,
                                            previousRoots: previous, logger: logger)
            logger.info("issuing spiffe://\(ca.trustDomain)/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT> as SDS secrets 'default' and 'ROOTCA'")
        }
        let security = try XDSTransportSecurity.make(tls: xdsTLS || xdsMTLS, mutual: xdsMTLS, certificatePath: xdsCert,
                                                     keyPath: xdsKey, ca: authority, trustDomain: ca.trustDomain,
                                                     host: xdsAddress.host)
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: xdsAddress.host, port: xdsAddress.port), transportSecurity: security,
            config: .defaults {
                $0.channelDebuggingCallbacks.onAcceptTCPConnection = ADSReadBuffer.limit
                $0.channelDebuggingCallbacks.onAcceptHTTP2Stream = ADSStreamDataCopier.install
            })
        let onNode: (@Sendable (Envoy_Config_Core_V3_Node, [String]) -> Void)? = issuer.map { issuer in
            { @Sendable node, peerURIs in issuer.nodeConnected(node, peerURIs: peerURIs) }
        }
        var services: [any RegistrableRPCService] = [
            AggregatedDiscoveryServer(cache: cache, registry: registry, metrics: metrics, logger: logger,
                                      nodeConnected: onNode, peerURIs: XDSTransportSecurity.peerURIs),
        ]
        if let issuer {
            services.append(CertificateSigningService(issuer: issuer, peerURIs: XDSTransportSecurity.peerURIs, logger: logger))
        }
        let server = GRPCServer(transport: transport, services: services)
        let signals = AsyncStream<Int32> { continuation in
            let sources = [SIGTERM, SIGINT].map { signalNumber -> any DispatchSourceSignal in
                signal(signalNumber, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
                source.setEventHandler { continuation.yield(signalNumber) }
                source.resume()
                return source
            }
            // The sources live as long as the stream (a dropped source stops delivering).
            nonisolated(unsafe) let retained = sources
            continuation.onTermination = { _ in retained.forEach { $0.cancel() } }
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await server.serve() }
            group.addTask { await watcher.run() }
            if let issuer {
                let rootWatch = ca.stateDir.map { RootWatch(stateDirectory: $0, trustDomain: ca.trustDomain,
                                                            known: issuer.signingRoot.rootCertificatePEM) }
                let grace = rootRotationGrace.seconds
                let caLogger = logger
                group.addTask {
                    // Renewal at half-life: wake for the soonest one, and at least every quarter TTL
                    // (a certificate issued meanwhile is due no sooner than half a TTL from now); with
                    // a state directory, every second, to notice `meshd rotate-root`.
                    let longest = min(rootWatch == nil ? 60 : 1, issuer.ttl / 4)
                    while !Task.isCancelled {
                        let wait = min(longest, max(0.05, issuer.nextRenewal?.timeIntervalSinceNow ?? longest))
                        try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
                        if let rotated = rootWatch?.changed(logger: caLogger) {
                            issuer.rotate(to: rotated.ca, previousRoots: rotated.previous, grace: grace)
                        }
                        issuer.tick()
                    }
                }
            }
            if let address = try await transport.listeningAddress.ipv4 {
                logger.info("ADS listening on \(address.host):\(address.port); admin on \(adminAddress.host):\(adminAddress.port)")
            }
            for await signalNumber in signals {
                logger.info("signal \(signalNumber): closing streams and exiting")
                break
            }
            // Streams from proxies never end by themselves: stop accepting, then end them.
            server.beginGracefulShutdown()
            try? await Task.sleep(for: .milliseconds(200))
            group.cancelAll()
        }
        try await adminChannel.close()
    }
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check every file under DIR offline; exit 1 on any error.")

    @Argument(help: "The config directory.")
    var directory: String

    func run() throws {
        let state = FileSource(directory: directory).reload()
        for error in state.errors { print("error: \(error)") }
        for warning in state.warnings { print("warning: \(warning)") }
        print("\(state.files) files, \(state.resources.count) resources, \(state.errors.count) errors, "
            + "\(state.warnings.count) warnings")
        if !state.errors.isEmpty { throw ExitCode(1) }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show each connected proxy's sync state per type, its latest ACK and any NACK reason.")

    @Option(name: .customLong("admin-address"), help: "meshd's admin address.")
    var adminAddress = HostPort(argument: "127.0.0.1:18080")!

    @Argument(help: "Show only this node id.")
    var node: String?

    func run() async throws {
        let host = adminAddress.host
        let data: Data
        do {
            let response = try await AdminClient.get(host: host, port: adminAddress.port, path: "/debug/syncz")
            guard response.status == .ok else {
                throw AdminClient.Failure(description: "/debug/syncz answered \(response.status.code)")
            }
            data = Data(response.body.readableBytesView)
        } catch {
            FileHandle.standardError.write(Data("meshd status: cannot read /debug/syncz from \(host.contains(":") ? "[\(host)]" : host):\(adminAddress.port): \(error)\n".utf8))
            throw ExitCode(1)
        }
        print(try ProxyStatusTable.render(syncz: data, node: node), terminator: "")
    }
}
