/// The stats of one scope (`cluster.<name>.`, `http.<stat_prefix>.`, `tcp.<stat_prefix>.`): full
/// names under the prefix, and the tag-extracted names with the scope's tags for Prometheus.
public struct StatScope: Sendable {
    public let store: StatsStore
    /// `cluster.backend.`
    public let prefix: String
    /// `cluster.`
    public let extractedPrefix: String
    public let tags: [StatTags.Tag]

    public init(store: StatsStore, prefix: String, extractedPrefix: String, tags: [StatTags.Tag]) {
        self.store = store
        self.prefix = prefix
        self.extractedPrefix = extractedPrefix
        self.tags = tags
    }

    public func counter(_ stat: String) -> Counter {
        store.counter(prefix + stat, StatTags(extractedName: extractedPrefix + stat, tags: tags))
    }

    public func gauge(_ stat: String) -> Gauge {
        store.gauge(prefix + stat, StatTags(extractedName: extractedPrefix + stat, tags: tags))
    }

    public func histogram(_ stat: String) -> Histogram {
        store.histogram(prefix + stat, StatTags(extractedName: extractedPrefix + stat, tags: tags))
    }
}
