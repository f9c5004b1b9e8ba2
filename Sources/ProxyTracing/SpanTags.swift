import ProxyAccessLog

/// The tags Envoy's connection manager puts on every request span, whatever the tracer, in its order.
enum SpanTags {
    static func of(_ entry: AccessLogEntry, nodeID: String, zone: String) -> [(String, String)] {
        var tags: [(String, String)] = [
            ("node_id", nodeID),
            ("zone", zone),
            ("guid:x-request-id", entry.requestHeaders.first(name: "x-request-id") ?? ""),
            ("http.url", "\(entry.scheme)://\(entry.authority)\(entry.path)"),
            ("http.method", entry.method),
            ("downstream_cluster", entry.requestHeaders.first(name: "x-envoy-downstream-service-cluster") ?? "-"),
            ("user_agent", entry.requestHeaders.first(name: "user-agent") ?? "-"),
            ("http.protocol", entry.protocolName ?? "-"),
            ("peer.address", entry.downstreamRemoteAddress.map(AccessLogEntry.withoutPort) ?? "-"),
            ("request_size", String(entry.bytesReceived)),
            ("response_size", String(entry.bytesSent)),
            ("component", "proxy"),
        ]
        if let cluster = entry.upstreamCluster {
            tags.append(("upstream_cluster", cluster))
            tags.append(("upstream_cluster.name", cluster))
        }
        tags.append(("http.status_code", String(entry.responseCode)))
        tags.append(("response_flags", entry.responseFlags.description))
        if entry.responseCode >= 500 || entry.responseCode == 0 { tags.append(("error", "true")) }
        return tags
    }
}
