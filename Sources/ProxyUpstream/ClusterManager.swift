/// All clusters by name, as one immutable value: a config push builds a new manager and publishes
/// it with the rest of the snapshot.
public final class ClusterManager: Sendable {
    public let clusters: [String: Cluster]
    /// In the order the config listed them, for admin output.
    public let ordered: [Cluster]

    public init(_ clusters: [Cluster]) {
        self.ordered = clusters
        self.clusters = Dictionary(clusters.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public subscript(name: String) -> Cluster? { clusters[name] }
}
