import ArgumentParser
import Foundation
import XDSAPI

/// N simulated proxies on one meshd (scripts/bench/meshd.sh): the time from a file write until every
/// proxy has received the new version, and meshd's RSS per connected proxy; with --bulk N, also the
/// time until every proxy has N more clusters written in one file. Prints one JSON line.
@main
struct MeshdLoad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshd-load", abstract: "Simulated Envoys on one meshd: push latency and meshd's memory per proxy.")

    @Option(help: "meshd's ADS address, IPv4 HOST:PORT.")
    var xds: String

    @Option(name: .customLong("meshd-pid"), help: "meshd's process id, for its RSS and CPU time.")
    var meshdPID: Int32

    @Option(name: .customLong("config-dir"), help: "meshd's config directory; its endpoints.yaml is rewritten.")
    var configDir: String

    @Option(help: "Simulated proxies, one connection each.")
    var proxies = 100

    @Option(help: "Endpoint file writes to time.")
    var pushes = 5

    @Option(help: "Also push this many clusters in one file.")
    var bulk = 0

    func run() async throws {
        let parts = xds.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else { throw ValidationError("--xds: HOST:PORT") }
        let host = String(parts[0])
        let names = ResourceNames()
        let fleet = (0..<proxies).map { SimulatedProxy(index: $0, names: names) }
        let node = EnvoyLikeNode.template()
        let report = try await withThrowingTaskGroup(of: Void.self) { group in
            for proxy in fleet {
                var own = node
                own.id = "bench-\(proxy.index)"
                group.addTask { try await proxy.run(host: host, port: port, node: own) }
            }
            let report = try await LoadScenario(meshdPID: meshdPID, configDir: URL(fileURLWithPath: configDir),
                                                fleet: fleet, pushes: pushes, bulk: bulk).run()
            group.cancelAll()
            while true {
                do {
                    guard try await group.next() != nil else { break }
                } catch {}  // streams end with cancellation errors
            }
            return report
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        print(String(decoding: try encoder.encode(report), as: UTF8.self))
    }
}

/// Envoy 1.40 names every extension it was built with in its node: 516 of them, ~61 KB on the wire.
/// The simulated proxies send as many (names and categories of the same shape), so meshd's memory
/// per proxy is an Envoy's.
enum EnvoyLikeNode {
    static let extensions = 516

    static func template() -> Envoy_Config_Core_V3_Node {
        var node = Envoy_Config_Core_V3_Node()
        node.cluster = "bench"
        node.userAgentName = "envoy"
        node.userAgentBuildVersion.version.majorNumber = 1
        node.userAgentBuildVersion.version.minorNumber = 40
        node.extensions = (0..<extensions).map { n in
            let number = String(format: "%03ld", n)
            var extensionInfo = Envoy_Config_Core_V3_Extension()
            extensionInfo.name = "envoy.extensions.bench.example_extension_\(number)"
            extensionInfo.category = "envoy.bench.category_\(String(format: "%02ld", n % 40))"
            extensionInfo.typeUrls = ["envoy.extensions.bench.v3.ExampleConfig\(number)"]
            return extensionInfo
        }
        return node
    }
}
