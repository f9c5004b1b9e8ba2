import Synchronization

/// A latency histogram in milliseconds with Envoy's default Prometheus bucket bounds, or those
/// `stats_config.histogram_bucket_settings` gives its name. Recording is lock-free; quantiles for
/// `/stats` are interpolated from the buckets.
public final class Histogram: Sendable {
    /// Envoy's default histogram bucket upper bounds.
    public static let bucketBounds: [Double] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
                                                30000, 60000, 300000, 600000, 1800000, 3600000]

    public let name: String
    public let tags: StatTags
    /// Upper bucket bounds, ascending.
    public let bounds: [Double]
    /// One slot per bound plus the overflow bucket.
    private let counts: [Slot]
    private let sumMicros = Atomic<UInt64>(0)
    /// Sees every sample, when a sink sends samples (statsd); nil otherwise.
    private let observer: (any HistogramSampleObserver)?

    private final class Slot: Sendable {
        let count = Atomic<UInt64>(0)
    }

    public init(name: String, tags: StatTags, bounds: [Double] = Histogram.bucketBounds,
                observer: (any HistogramSampleObserver)? = nil) {
        self.name = name
        self.tags = tags
        self.bounds = bounds
        self.counts = (0...bounds.count).map { _ in Slot() }
        self.observer = observer
    }

    public func record(milliseconds: Double) {
        let index = bounds.firstIndex(where: { milliseconds <= $0 }) ?? bounds.count
        counts[index].count.wrappingAdd(1, ordering: .relaxed)
        sumMicros.wrappingAdd(UInt64(max(0, milliseconds) * 1000), ordering: .relaxed)
        observer?.record(self, milliseconds: milliseconds)
    }

    public struct Snapshot: Sendable {
        public var bounds: [Double]
        /// Non-cumulative count per bucket; the last one is above every bound.
        public var bucketCounts: [UInt64]
        public var sum: Double
        public var count: UInt64 { bucketCounts.reduce(0, +) }

        /// Cumulative counts for Prometheus `_bucket{le=...}` lines (the bounds, then +Inf).
        public var cumulativeCounts: [UInt64] {
            var running: UInt64 = 0
            return bucketCounts.map { running += $0; return running }
        }

        /// The value at quantile `q` (0...1), interpolated linearly inside its bucket.
        public func quantile(_ q: Double) -> Double {
            let total = count
            guard total > 0 else { return 0 }
            let rank = q * Double(total)
            var seen: Double = 0
            for (index, bucketCount) in bucketCounts.enumerated() where bucketCount > 0 {
                let lower = index == 0 ? 0 : bounds[index - 1]
                let upper = index < bounds.count ? bounds[index] : lower * 2
                if seen + Double(bucketCount) >= rank {
                    let fraction = (rank - seen) / Double(bucketCount)
                    return lower + (upper - lower) * max(0, min(1, fraction))
                }
                seen += Double(bucketCount)
            }
            return bounds.last ?? 0
        }
    }

    public func snapshot() -> Snapshot {
        Snapshot(bounds: bounds, bucketCounts: counts.map { $0.count.load(ordering: .relaxed) },
                 sum: Double(sumMicros.load(ordering: .relaxed)) / 1000)
    }
}

/// Receives every histogram sample, for sinks that send samples rather than buckets (statsd's
/// `|ms` lines). Called on the recording thread, so it must not block.
public protocol HistogramSampleObserver: Sendable {
    func record(_ histogram: Histogram, milliseconds: Double)
}
