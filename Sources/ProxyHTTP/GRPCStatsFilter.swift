import NIOCore
import ProxyCore

/// `envoy.filters.http.grpc_stats`: per gRPC call, `cluster.<c>.grpc.[<service>.<method>.]` `total`,
/// `success` or `failure`, the `grpc-status` code, and `request_message_count` /
/// `response_message_count`. Per-method names for every method (`stats_for_all_methods`) or the
/// allowlisted ones; other calls count under the cluster's `grpc.` alone. Counters appear when first
/// counted, as Envoy's dynamic stat names do.
public final class GRPCStatsFilter: Sendable {
    public enum Methods: Sendable, Equatable {
        case all
        /// Service name → method names.
        case allowlist([String: Set<String>])
    }

    let methods: Methods
    let replaceDotsInServiceName: Bool
    let store: StatsStore

    public init(methods: Methods, replaceDotsInServiceName: Bool, store: StatsStore) {
        self.methods = methods
        self.replaceDotsInServiceName = replaceDotsInServiceName
        self.store = store
    }

    /// One finished call's numbers.
    struct Call {
        let service: Substring
        let method: Substring
        var requestMessages = GRPCFrameCounter()
        var responseMessages = GRPCFrameCounter()
        var status: Int?

        /// `/package.Service/Method`; nil for any other path.
        init?(path: Substring) {
            let trimmed = path.split(separator: "?", maxSplits: 1).first ?? path
            let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else { return nil }
            service = parts[1]
            method = parts[2]
        }
    }

    func record(_ call: Call, cluster: String) {
        var scope = "cluster.\(cluster).grpc."
        var tags = [StatTags.Tag("envoy_cluster_name", cluster)]
        var extractedPrefix = "cluster.grpc."
        let perMethod: Bool
        switch methods {
        case .all: perMethod = true
        case .allowlist(let services): perMethod = services[String(call.service)]?.contains(String(call.method)) ?? false
        }
        if perMethod {
            let service = replaceDotsInServiceName ? call.service.replacingOccurrences(of: ".", with: "_") : String(call.service)
            scope += "\(service).\(call.method)."
            // Envoy's tag extraction takes the first two name parts after `grpc.` as service and
            // method (its gRPC-bridge regexes); the rest stays in the name.
            let parts = "\(service).\(call.method)".split(separator: ".")
            tags = [StatTags.Tag("envoy_grpc_bridge_method", String(parts[1])),
                    StatTags.Tag("envoy_grpc_bridge_service", String(parts[0]))] + tags
            extractedPrefix += parts.dropFirst(2).map { $0 + "." }.joined()
        }
        func count(_ stat: String, by amount: Int = 1) {
            guard amount > 0 else { return }
            store.counter(scope + stat, StatTags(extractedName: extractedPrefix + stat, tags: tags)).add(UInt64(amount))
        }
        count("total")
        let status = call.status ?? 2  // no status at all: UNKNOWN, as a failure
        count(status == 0 ? "success" : "failure")
        count(String(status))
        count("request_message_count", by: call.requestMessages.messages)
        count("response_message_count", by: call.responseMessages.messages)
    }
}

/// Counts gRPC length-prefixed messages in a body as it streams past, across chunk boundaries: each
/// 5-byte prefix (flag, 32-bit length) starts one message.
struct GRPCFrameCounter {
    private(set) var messages = 0
    private var headerBytes = 0
    private var length = 0
    private var remaining = 0

    mutating func consume(_ buffer: ByteBuffer) {
        let view = buffer.readableBytesView
        var index = view.startIndex
        while index < view.endIndex {
            if remaining > 0 {
                let skip = min(remaining, view.endIndex - index)
                remaining -= skip
                index += skip
                continue
            }
            let byte = view[index]
            index += 1
            if headerBytes > 0 { length = length << 8 | Int(byte) }
            headerBytes += 1
            if headerBytes == 5 {
                messages += 1
                remaining = length
                headerBytes = 0
                length = 0
            }
        }
    }
}
