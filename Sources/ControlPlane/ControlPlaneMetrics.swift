import Synchronization

/// meshd's own counters, printed by `/metrics` in Prometheus text.
public final class ControlPlaneMetrics: Sendable {
    private struct State {
        var pushes: [ResourceType: UInt64] = [:]
        var nacks: [ResourceType: UInt64] = [:]
        var ackLatencyBuckets = Array(repeating: UInt64(0), count: ControlPlaneMetrics.latencyBounds.count + 1)
        var ackLatencySum = 0.0
        var reloads: UInt64 = 0
        var fileErrors = 0
        var resources: [ResourceType: Int] = [:]
    }

    static let latencyBounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    private let state = Mutex(State())

    public init() {}

    func pushed(_ type: ResourceType) { state.withLock { $0.pushes[type, default: 0] += 1 } }
    func nacked(_ type: ResourceType) { state.withLock { $0.nacks[type, default: 0] += 1 } }

    func acked(latency seconds: Double) {
        state.withLock { state in
            let index = Self.latencyBounds.firstIndex { seconds <= $0 } ?? Self.latencyBounds.count
            state.ackLatencyBuckets[index] += 1
            state.ackLatencySum += seconds
        }
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
        var cumulative: UInt64 = 0
        for (index, bound) in Self.latencyBounds.enumerated() {
            cumulative += state.ackLatencyBuckets[index]
            out += "meshd_push_ack_latency_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        cumulative += state.ackLatencyBuckets.last!
        out += "meshd_push_ack_latency_seconds_bucket{le=\"+Inf\"} \(cumulative)\n"
        out += "meshd_push_ack_latency_seconds_sum \(state.ackLatencySum)\n"
        out += "meshd_push_ack_latency_seconds_count \(cumulative)\n"
        return out
    }
}
