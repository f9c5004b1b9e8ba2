import Foundation
import Logging
import Testing
@testable import ControlPlane

@Suite struct ConfigWatcherTests {
    @Test(arguments: [true, false])
    func editsArePublishedAfterTheQuietPeriod(inotify: Bool) async throws {
        let directory = NSTemporaryDirectory() + "meshd-watch-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let cache = SnapshotCache()
        let watcher = ConfigWatcher(source: FileSource(directory: directory), cache: cache, metrics: ControlPlaneMetrics(),
                                    debounceAfter: .milliseconds(50), debounceMax: .milliseconds(500),
                                    logger: Logger(label: "test"))
        watcher.reloadNow()
        #expect(cache.allResources.isEmpty)
        let task = Task { await watcher.run(useInotify: inotify) }
        defer { task.cancel() }
        try await Task.sleep(for: .milliseconds(100))
        // Written the way editors do: a temporary file renamed over the target.
        let text = "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l1\n"
        try text.write(toFile: directory + "/sub/l.yaml", atomically: true, encoding: .utf8)
        let started = Date()
        while cache.allResources.isEmpty, Date().timeIntervalSince(started) < 3 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(cache.allResources.map(\.name) == ["l1"])
        #expect(Date().timeIntervalSince(started) < 1, "published within a second of the write")
    }
}
