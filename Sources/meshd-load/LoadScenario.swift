import Foundation

/// What meshd-load prints (the keys scripts/bench/meshd.sh tabulates).
struct LoadReport: Encodable {
    var proxies: Int
    var pushes: Int
    var p50Ms: Double
    var p99Ms: Double
    var allReceivedP50Ms: Double
    var maxMs: Double
    var connectedRSSPerProxyKB: Double
    var rssPerProxyKB: Double
    var meshdRSSMB: Double
    var meshdCPUPerPushMs: Double
    var bulkResources: Int?
    var bulkFirstMs: Double?
    var bulkAllMs: Double?
    var bulkMeshdRSSMB: Double?
    var bulkMeshdCPUSeconds: Double?

    enum CodingKeys: String, CodingKey {
        case proxies, pushes
        case p50Ms = "p50_ms", p99Ms = "p99_ms", allReceivedP50Ms = "all_received_p50_ms", maxMs = "max_ms"
        case connectedRSSPerProxyKB = "connected_rss_per_proxy_kb", rssPerProxyKB = "rss_per_proxy_kb"
        case meshdRSSMB = "meshd_rss_mb", meshdCPUPerPushMs = "meshd_cpu_per_push_ms"
        case bulkResources = "bulk_resources", bulkFirstMs = "bulk_first_ms", bulkAllMs = "bulk_all_ms"
        case bulkMeshdRSSMB = "bulk_meshd_rss_mb", bulkMeshdCPUSeconds = "bulk_meshd_cpu_s"
    }
}

struct LoadFailure: Error, CustomStringConvertible {
    var description: String
}

/// The measurements, once every proxy's stream is open.
struct LoadScenario {
    let meshdPID: Int32
    let configDir: URL
    let fleet: [SimulatedProxy]
    let pushes: Int
    let bulk: Int

    func run() async throws -> LoadReport {
        let endpoints = configDir.appendingPathComponent("endpoints.yaml")
        let original = try String(contentsOf: endpoints, encoding: .utf8)
        let baseline = MeshdProcess.rssKB(meshdPID)
        try await waitUntil(seconds: 120, "every proxy has its first responses") { fleet.allSatisfy(\.ready) }
        let connectedRSS = MeshdProcess.rssKB(meshdPID)
        var latencies: [[Double]] = []
        let cpuBefore = MeshdProcess.cpuSeconds(meshdPID)
        for push in 0..<pushes {
            let before = Set(fleet.compactMap(\.endpointsVersion))
            let start = ContinuousClock.now
            try original.replacingOccurrences(of: "port_value: 8000", with: "port_value: \(9000 + push)")
                .write(to: endpoints, atomically: false, encoding: .utf8)
            try await waitUntil(seconds: 30, "push \(push) reaches every proxy") {
                fleet.allSatisfy { proxy in proxy.endpointsVersion.map { !before.contains($0) } ?? false }
            }
            let arrived = fleet.map { proxy in
                proxy.state.withLock { state in
                    state.endpointsSeen.filter { !before.contains($0.key) && $0.value >= start }.values.min()
                }
            }
            latencies.append(try arrived.map { instant in
                guard let instant else { throw LoadFailure(description: "push \(push): a proxy got no new version") }
                return Self.milliseconds(instant - start)
            }.sorted())
            try await Task.sleep(for: .milliseconds(300))
        }
        let cpuPerPush = (MeshdProcess.cpuSeconds(meshdPID) - cpuBefore) / Double(max(pushes, 1))
        // Steady state, a moment after the connect storm and the pushes.
        try await Task.sleep(for: .milliseconds(2500))
        let steadyRSS = MeshdProcess.rssKB(meshdPID)
        try original.write(to: endpoints, atomically: false, encoding: .utf8)
        let everything = latencies.flatMap { $0 }.sorted()
        let last = latencies.map { $0.last ?? 0 }.sorted()
        var report = LoadReport(
            proxies: fleet.count, pushes: pushes,
            p50Ms: Self.median(everything), p99Ms: everything.isEmpty ? 0 : everything[max(0, Int(Double(everything.count) * 0.99) - 1)],
            allReceivedP50Ms: Self.median(last), maxMs: last.last ?? 0,
            connectedRSSPerProxyKB: Double(connectedRSS - baseline) / Double(fleet.count),
            rssPerProxyKB: Double(steadyRSS - baseline) / Double(fleet.count),
            meshdRSSMB: Double(steadyRSS) / 1024, meshdCPUPerPushMs: cpuPerPush * 1000)
        if bulk > 0 { try await bulkPush(into: &report) }
        return report
    }

    /// Writes `bulk` STATIC clusters in one JSON file; the time until every proxy has them all.
    private func bulkPush(into report: inout LoadReport) async throws {
        let before = fleet.map { $0.state.withLock { $0.clusters.count } }.max() ?? 0
        var json = #"{"resources": ["#
        for index in 0..<bulk {
            if index > 0 { json += ", " }
            json += #"{"@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "bulk-\#(index)", "#
                + #""connect_timeout": "1s", "type": "STATIC", "load_assignment": {"cluster_name": "bulk-\#(index)", "#
                + #""endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"#
                + #""address": "127.0.0.1", "port_value": \#(10000 + index % 50000)}}}}]}]}}"#
        }
        json += "]}"
        let path = configDir.appendingPathComponent("bulk.json")
        let cpuBefore = MeshdProcess.cpuSeconds(meshdPID)
        let start = ContinuousClock.now
        try json.write(to: path, atomically: false, encoding: .utf8)
        let target = before + bulk
        try await waitUntil(seconds: 120, "the bulk push of \(bulk) clusters reaches every proxy", every: .milliseconds(10)) {
            fleet.allSatisfy { $0.state.withLock { $0.clusters.count } >= target }
        }
        let received = fleet.map { proxy in Self.milliseconds(proxy.state.withLock { $0.clusters.at } - start) }.sorted()
        report.bulkResources = bulk
        report.bulkFirstMs = received.first
        report.bulkAllMs = received.last
        report.bulkMeshdRSSMB = Double(MeshdProcess.rssKB(meshdPID)) / 1024
        report.bulkMeshdCPUSeconds = MeshdProcess.cpuSeconds(meshdPID) - cpuBefore
        try FileManager.default.removeItem(at: path)
    }

    private func waitUntil(seconds: Int, _ what: String, every interval: Duration = .milliseconds(2),
                           _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while !condition() {
            guard ContinuousClock.now < deadline else { throw LoadFailure(description: "not within \(seconds) s: \(what)") }
            try await Task.sleep(for: interval)
        }
    }

    static func milliseconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }

    static func median(_ sorted: [Double]) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// meshd's RSS and CPU time, from /proc.
enum MeshdProcess {
    static func rssKB(_ pid: Int32) -> Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return 0 }
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
        return line.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) } ?? 0
    }

    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
        return Double(ticks) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
