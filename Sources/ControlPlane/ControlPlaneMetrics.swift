import Synchronization

/// A Prometheus histogram's buckets (cumulative on output), sum and count.
struct LatencyHistogram {
    static let bounds = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    var buckets = Array(repeating: UInt64(0), count: LatencyHistogram.bounds.count + 1)
    var sum = 0.0

    mutating func record(_ seconds: Double) {
        buckets[Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count] += 1
        sum += seconds
    }

    /// The `_bucket`, `_sum` and `_count` lines; `labels` is `type="CDS",` or empty.
    func lines(_ name: String, labels: String = "") -> String {
        var out = ""
        var cumulative: UInt64 = 0
        for (index, bound) in Self.bounds.enumerated() {
            cumulative += buckets[index]
            out += "\(name)_bucket{\(labels)le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += buckets.last!
        out += "\(name)_bucket{\(labels)le=\"+Inf\"} \(cumulative)\n"
        let bare = labels.isEmpty ? "" : "{" + labels.dropLast() + "}"
        out += "\(name)_sum\(bare) \(sum)\n\(name)_count\(bare) \(cumulative)\n"
        return out
    }
}

/// meshd's own metrics, printed by `/metrics` in Prometheus text.
public final class ControlPlaneMetrics: Sendable {
    private struct State {
        var pushes: [ResourceType: UInt64] = [:]
        var nacks: [ResourceType: UInt64] = [:]
        var ackLatency: [ResourceType: LatencyHistogram] = [:]
        var debounceWait = LatencyHistogram()
        var snapshotBuild = LatencyHistogram()
        var reloads: UInt64 = 0
        var fileErrors = 0
        var resources: [ResourceType: Int] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    func pushed(_ type: ResourceType) { state.withLock { $0.pushes[type, default: 0] += 1 } }
    func nacked(_ type: ResourceType) { state.withLock { $0.nacks[type, default: 0] += 1 } }

    /// A push of `type` was acknowledged `seconds` after it was sent.
    func acked(_ type: ResourceType, latency seconds: Double) {
        state.withLock { $0.ackLatency[type, default: LatencyHistogram()].record(seconds) }
    }

    /// A reload waited `seconds` after the first file change (the debounce).
    func debounced(waited seconds: Double) {
        state.withLock { $0.debounceWait.record(seconds) }
    }

    /// Reading the files and building the snapshot took `seconds`.
    func built(snapshotIn seconds: Double) {
        state.withLock { $0.snapshotBuild.record(seconds) }
    }

    public func reloaded(_ source: SourceState) {
        state.withLock { state in
            state.reloads += 1
            state.fileErrors = source.errors.count
            state.resources = [:]
            for resource in source.resources {
                if let type = ResourceType(typeURL: resource.typeURL) { state.resources[type, default: 0] += 1 }
            }
        }
    }

    public func prometheus(connectedProxies: Int) -> String {
        let state = self.state.withLock { $0 }
        var out = "# TYPE meshd_connected_proxies gauge\nmeshd_connected_proxies \(connectedProxies)\n"
        out += "# TYPE meshd_pushes_total counter\n"
        for type in ResourceType.allCases { out += "meshd_pushes_total{type=\"\(type.shortName)\"} \(state.pushes[type] ?? 0)\n" }
        out += "# TYPE meshd_nacks_total counter\n"
        for type in ResourceType.allCases { out += "meshd_nacks_total{type=\"\(type.shortName)\"} \(state.nacks[type] ?? 0)\n" }
        out += "# TYPE meshd_resources gauge\n"
        for type in ResourceType.allCases { out += "meshd_resources{type=\"\(type.shortName)\"} \(state.resources[type] ?? 0)\n" }
        out += "# TYPE meshd_file_errors gauge\nmeshd_file_errors \(state.fileErrors)\n"
        out += "# TYPE meshd_config_reloads_total counter\nmeshd_config_reloads_total \(state.reloads)\n"
        out += "# TYPE meshd_push_ack_latency_seconds histogram\n"
        for type in ResourceType.allCases {
            out += (state.ackLatency[type] ?? LatencyHistogram())
                .lines("meshd_push_ack_latency_seconds", labels: "type=\"\(type.shortName)\",")
        }
        out += "# TYPE meshd_debounce_wait_seconds histogram\n" + state.debounceWait.lines("meshd_debounce_wait_seconds")
        out += "# TYPE meshd_snapshot_build_seconds histogram\n" + state.snapshotBuild.lines("meshd_snapshot_build_seconds")
        return out
    }
}
