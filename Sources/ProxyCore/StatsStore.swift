import Synchronization

/// Every stat of the process, by name. Stats are created when config is compiled (never per
/// request); the lock here guards creation and listing only. Asking twice for a name returns the
/// same stat, so a cluster that survives a config push keeps its counts.
public final class StatsStore: Sendable {
    private struct Entries {
        var counters: [String: Counter] = [:]
        var gauges: [String: Gauge] = [:]
        var histograms: [String: Histogram] = [:]
        var families: [ObjectIdentifier: StatusCodeCounters] = [:]
    }

    private let entries = Mutex(Entries())
    /// `stats_config.histogram_bucket_settings`: the first rule whose matcher takes a histogram's name
    /// gives its bounds. Set before any histogram is made.
    private let bucketRules = Mutex<[HistogramBucketRule]>([])
    /// `stats_config.stats_tags` and `use_all_default_tags`. Set before any stat is made.
    private let tagRules = Mutex(StatTagRules())
    private let sampleObserver = Mutex<(any HistogramSampleObserver)?>(nil)

    public init() {}

    public func setHistogramBuckets(_ rules: [HistogramBucketRule]) {
        bucketRules.withLock { $0 = rules }
    }

    public func setTagRules(_ rules: StatTagRules) {
        tagRules.withLock { $0 = rules }
    }

    /// Histograms made after this report their samples to `observer` (a statsd sink's buffers).
    public func setHistogramSampleObserver(_ observer: any HistogramSampleObserver) {
        sampleObserver.withLock { $0 = observer }
    }

    private func tagged(_ name: String, _ tags: StatTags) -> StatTags {
        tagRules.withLock { $0 }.apply(fullName: name, to: tags)
    }

    public func counter(_ name: String, _ tags: StatTags) -> Counter {
        let tags = tagged(name, tags)
        return entries.withLock { Self.existingOrNew(&$0.counters, name) { Counter(name: name, tags: tags) } }
    }

    public func gauge(_ name: String, _ tags: StatTags) -> Gauge {
        let tags = tagged(name, tags)
        return entries.withLock { Self.existingOrNew(&$0.gauges, name) { Gauge(name: name, tags: tags) } }
    }

    /// A gauge whose value is read from `compute` when listed; it replaces any gauge of that name
    /// (a cluster rebuilt by a config push brings new state to read).
    @discardableResult
    public func computedGauge(_ name: String, _ tags: StatTags, compute: @escaping @Sendable () -> Int64) -> Gauge {
        let gauge = Gauge(name: name, tags: tagged(name, tags), compute: compute)
        entries.withLock { $0.gauges[name] = gauge }
        return gauge
    }

    public func histogram(_ name: String, _ tags: StatTags) -> Histogram {
        let bounds = bucketRules.withLock { rules in rules.first { $0.matches(name) }?.bounds } ?? Histogram.bucketBounds
        let tags = tagged(name, tags)
        let observer = sampleObserver.withLock { $0 }
        return entries.withLock {
            Self.existingOrNew(&$0.histograms, name) { Histogram(name: name, tags: tags, bounds: bounds, observer: observer) }
        }
    }

    private static func existingOrNew<Stat>(_ stats: inout [String: Stat], _ name: String, _ make: () -> Stat) -> Stat {
        if let existing = stats[name] { return existing }
        let stat = make()
        stats[name] = stat
        return stat
    }

    /// Registers a family of per-code counters for listing; the caller keeps it to record into.
    public func register(_ family: StatusCodeCounters) {
        entries.withLock { $0.families[ObjectIdentifier(family)] = family }
    }

    public func unregister(_ family: StatusCodeCounters) {
        _ = entries.withLock { $0.families.removeValue(forKey: ObjectIdentifier(family)) }
    }

    /// A consistent listing for admin, each kind sorted by name.
    public func snapshot() -> StatsSnapshot {
        let (counters, gauges, histograms, families) = entries.withLock { entries in
            (Array(entries.counters.values), Array(entries.gauges.values), Array(entries.histograms.values),
             Array(entries.families.values))
        }
        var counterValues = counters.map(CounterValue.init)
        let rules = tagRules.withLock { $0 }
        for family in families {
            // Per-code counters are named only when listed, so their tags are ruled here.
            counterValues += family.usedValues().map { value in
                var value = value
                value.tags = rules.apply(fullName: value.name, to: value.tags)
                return value
            }
        }
        return StatsSnapshot(
            counters: counterValues.sorted { $0.name < $1.name },
            gauges: gauges.sorted { $0.name < $1.name },
            histograms: histograms.sorted { $0.name < $1.name })
    }

    /// `POST /reset_counters`: zeroes counters; gauges and histograms keep their values, as in Envoy.
    public func resetCounters() {
        let (counters, families) = entries.withLock { (Array($0.counters.values), Array($0.families.values)) }
        counters.forEach { $0.reset() }
        families.forEach { $0.reset() }
    }
}

/// What admin prints: every stat at one moment.
public struct StatsSnapshot: Sendable {
    public var counters: [CounterValue]
    public var gauges: [Gauge]
    public var histograms: [Histogram]
}

/// One `histogram_bucket_settings` entry: which histogram names, and their bucket bounds (ascending).
public struct HistogramBucketRule: Sendable {
    public let matches: @Sendable (String) -> Bool
    public let bounds: [Double]

    public init(bounds: [Double], matches: @escaping @Sendable (String) -> Bool) {
        self.bounds = bounds.sorted()
        self.matches = matches
    }
}
