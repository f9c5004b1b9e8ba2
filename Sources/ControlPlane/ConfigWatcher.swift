import Foundation
import Logging

/// Watches the config directory (inotify on Linux, with a slow safety scan; polling elsewhere)
/// and publishes to the cache after a quiet period (`debounceAfter`) or, under constant edits,
/// after `debounceMax`. A reload is atomic from the cache's view: the whole directory is
/// validated, then published at once.
public struct ConfigWatcher: Sendable {
    public var source: FileSource
    public var cache: SnapshotCache
    public var metrics: ControlPlaneMetrics
    public var debounceAfter: Duration
    public var debounceMax: Duration
    public var pollInterval: Duration
    public var logger: Logger
    /// Called after every reload with its result (for /debug/syncz and tests).
    public var onReload: @Sendable (SourceState) -> Void

    public init(source: FileSource, cache: SnapshotCache, metrics: ControlPlaneMetrics, debounceAfter: Duration,
                debounceMax: Duration, pollInterval: Duration = .milliseconds(20), logger: Logger,
                onReload: @escaping @Sendable (SourceState) -> Void = { _ in }) {
        self.source = source
        self.cache = cache
        self.metrics = metrics
        self.debounceAfter = debounceAfter
        self.debounceMax = debounceMax
        self.pollInterval = pollInterval
        self.logger = logger
        self.onReload = onReload
    }

    /// Loads once and publishes; returns what was loaded.
    @discardableResult
    public func reloadNow() -> SourceState {
        let clock = ContinuousClock()
        let started = clock.now
        let state = source.reload()
        for error in state.errors { logger.error("\(error)") }
        for warning in state.warnings { logger.warning("\(warning)") }
        cache.update(state.resources)
        metrics.built(snapshotIn: Self.seconds(clock.now - started))
        metrics.reloaded(state)
        logger.info("loaded \(state.resources.count) resources from \(state.files) files (\(state.errors.count) errors)")
        onReload(state)
        return state
    }

    /// Watches until cancelled.
    public func run(useInotify: Bool = true) async {
        let clock = ContinuousClock()
        let inotify = useInotify ? InotifyWatch(directory: source.directory) : nil
        defer { inotify?.stop() }
        logger.info("watching \(source.directory) with \(inotify == nil ? "polling" : "inotify")")
        var lastListing = source.listFiles()
        var firstChange: ContinuousClock.Instant?
        var lastChange = clock.now
        var lastScan = clock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: pollInterval)
            // With inotify, files are stat-ed only after an event (or every 2 s, in case one was lost).
            if let inotify, firstChange == nil, !inotify.consumeChanges(), clock.now - lastScan < .seconds(2) {
                continue
            }
            lastScan = clock.now
            let listing = source.listFiles()
            if listing != lastListing {
                lastListing = listing
                lastChange = clock.now
                if firstChange == nil { firstChange = lastChange }
            }
            guard let first = firstChange else { continue }
            let now = clock.now
            if now - lastChange >= debounceAfter || now - first >= debounceMax {
                firstChange = nil
                metrics.debounced(waited: Self.seconds(now - first))
                reloadNow()
            }
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
