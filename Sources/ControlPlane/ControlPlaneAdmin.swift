import Foundation
import SwiftProtobuf
import XDSAPI

/// meshd's HTTP endpoints: `/debug/syncz`, `/debug/config_dump?node=ID`, `/metrics`, `/ready`.
public struct ControlPlaneAdmin: Sendable {
    public let cache: SnapshotCache
    public let registry: SyncRegistry
    public let metrics: ControlPlaneMetrics
    public let lastReload: @Sendable () -> SourceState?

    public init(cache: SnapshotCache, registry: SyncRegistry, metrics: ControlPlaneMetrics,
                lastReload: @escaping @Sendable () -> SourceState?) {
        self.cache = cache
        self.registry = registry
        self.metrics = metrics
        self.lastReload = lastReload
    }

    public func handle(method: String, uri: String) -> (status: Int, contentType: String, body: String) {
        let parts = uri.split(separator: "?", maxSplits: 1)
        let path = parts.first.map(String.init) ?? "/"
        let query = parts.count > 1 ? String(parts[1]) : ""
        switch path {
        case "/ready":
            return lastReload() == nil ? (503, "text/plain", "loading\n") : (200, "text/plain", "ready\n")
        case "/metrics":
            return (200, "text/plain; version=0.0.4", metrics.prometheus(connectedProxies: registry.count))
        case "/debug/syncz":
            return (200, "application/json", syncz())
        case "/debug/config_dump":
            let node = query.split(separator: "&").first { $0.hasPrefix("node=") }.map { String($0.dropFirst(5)) }
            return configDump(nodeID: node.flatMap { $0.removingPercentEncoding })
        default:
            return (404, "text/plain", "unknown path; try /debug/syncz, /debug/config_dump?node=ID, /metrics, /ready\n")
        }
    }

    /// One entry per connected proxy, like istiod's syncz, plus the config errors meshd holds.
    func syncz() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        var proxies: [[String: Any]] = []
        for proxy in registry.all() {
            var types: [String: Any] = [:]
            for (type, status) in proxy.types {
                var entry: [String: Any] = [:]
                entry["sent_version"] = status.sentVersion ?? NSNull()
                entry["acked_version"] = status.ackedVersion ?? NSNull()
                entry["nonce"] = status.nonce ?? NSNull()
                entry["last_nack"] = status.nackMessage ?? NSNull()
                entry["push_to_ack_seconds"] = status.ackLatencySeconds ?? NSNull()
                entry["acked_at"] = status.ackedAt.map { formatter.string(from: $0) } ?? NSNull()
                entry["status"] = status.nackMessage != nil ? "NACKED"
                    : (status.ackedVersion == status.sentVersion ? "SYNCED" : "STALE")
                types[type.shortName] = entry
            }
            let node = proxy.node
            let version = node.map { "\($0.userAgentBuildVersion.version.majorNumber).\($0.userAgentBuildVersion.version.minorNumber).\($0.userAgentBuildVersion.version.patch)" }
            proxies.append([
                "node_id": node?.id ?? "",
                "cluster": node?.cluster ?? "",
                "client": "\(node?.userAgentName ?? "") \(version ?? "")",
                "protocol": proxy.protocolName,
                "connected_since": formatter.string(from: proxy.connectedSince),
                "types": types,
            ])
        }
        let state = lastReload()
        let document: [String: Any] = [
            "proxies": proxies,
            "config_errors": (state?.errors ?? []).map { error -> [String: Any] in
                ["file": error.file, "line": error.line ?? NSNull(), "field": error.fieldPath, "reason": error.reason,
                 "message": error.description]
            },
            "warnings": state?.warnings ?? [],
        ]
        let data = (try? JSONSerialization.data(withJSONObject: document, options: [.prettyPrinted, .sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    func configDump(nodeID: String?) -> (status: Int, contentType: String, body: String) {
        guard let nodeID else { return (400, "text/plain", "give ?node=ID\n") }
        let proxy = registry.all().first { $0.node?.id == nodeID }
        let identity = NodeIdentity(id: nodeID, cluster: proxy?.node?.cluster ?? "")
        let snapshot = cache.snapshot(for: identity)
        var options = JSONEncodingOptions()
        options.preserveProtoFieldNames = true
        var parts: [String] = []
        for type in ResourceType.allCases {
            let resources = snapshot.resources(ofType: type.typeURL).values.sorted { $0.name < $1.name }
            let items = resources.compactMap { resource -> String? in
                guard let json = try? resource.resource.jsonString(options: options) else { return nil }
                return "{\"name\":\"\(resource.name)\",\"version\":\"\(resource.version)\",\"file\":\"\(resource.file)\",\"resource\":\(json)}"
            }
            parts.append("\"\(type.shortName)\":[\(items.joined(separator: ","))]")
        }
        return (200, "application/json", "{\"node\":\"\(nodeID)\",\"cluster\":\"\(identity.cluster)\",\(parts.joined(separator: ","))}\n")
    }
}
