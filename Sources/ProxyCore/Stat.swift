/// How a stat name splits into Envoy's tag-extracted name and tags, so Prometheus output reads
/// `envoy_cluster_upstream_rq_total{envoy_cluster_name="web"}` for `cluster.web.upstream_rq_total`.
public struct StatTags: Sendable, Hashable {
    public var extractedName: String
    public var tags: [Tag]

    public struct Tag: Sendable, Hashable {
        public var name: String
        public var value: String
        public init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    public init(extractedName: String, tags: [Tag] = []) {
        self.extractedName = extractedName
        self.tags = tags
    }
}
