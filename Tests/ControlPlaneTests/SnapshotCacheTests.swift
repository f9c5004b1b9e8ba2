import Synchronization
import Testing
import XDSResource
@testable import ControlPlane

/// Node views from scoped resources, shared per cluster, and who is woken by which change.
@Suite struct SnapshotCacheTests {
    static func scoped(_ name: String, port: UInt32, _ scope: NodeScope) -> VersionedResource {
        var resource = Fixtures.endpoints(name, port: port)
        resource.scope = scope
        return resource
    }

    static func port(_ snapshot: NodeSnapshot, _ name: String) -> NodeScope? {
        snapshot.resources(ofType: ResourceType.endpoint.typeURL)[name]?.scope
    }

    @Test func theMostSpecificScopeWinsAndTheFirstAmongEquals() {
        let cache = SnapshotCache()
        cache.update([
            Self.scoped("web", port: 1, .all),
            Self.scoped("web", port: 2, .cluster("front")),
            Self.scoped("api", port: 3, .nodeID("n1")),
            Self.scoped("api", port: 4, .all),
            Self.scoped("db", port: 5, .cluster("front")),
            Self.scoped("db", port: 6, .cluster("front")),
        ])
        cache.updateIssued(["n1": [Self.scoped("api", port: 7, .nodeID("n1")), Self.scoped("cert", port: 8, .nodeID("n1"))]])
        let n1 = cache.snapshot(for: NodeIdentity(id: "n1", cluster: "front"))
        #expect(Self.port(n1, "web") == .cluster("front"))
        #expect(n1.resources(ofType: ResourceType.endpoint.typeURL)["api"]?.version == Self.scoped("api", port: 3, .all).version)
        #expect(n1.resources(ofType: ResourceType.endpoint.typeURL)["db"]?.version == Self.scoped("db", port: 5, .all).version)
        #expect(Self.port(n1, "cert") == .nodeID("n1"))
        // A node of another cluster, asked for after n1's view was built, gets its own.
        let other = cache.snapshot(for: NodeIdentity(id: "n2", cluster: "back"))
        #expect(Self.port(other, "web") == .all)
        #expect(Self.port(other, "api") == .all)
        #expect(Self.port(other, "db") == nil)
        #expect(Self.port(other, "cert") == nil)
        // A node of n1's cluster shares the cluster's view but not n1's own resources.
        let sibling = cache.snapshot(for: NodeIdentity(id: "n3", cluster: "front"))
        #expect(Self.port(sibling, "web") == .cluster("front"))
        #expect(Self.port(sibling, "api") == .all)
        #expect(Self.port(sibling, "cert") == nil)
    }

    @Test func aFileChangeReplacesTheSharedViews() {
        let cache = SnapshotCache()
        cache.update([Self.scoped("web", port: 1, .all)])
        let node = NodeIdentity(id: "n1", cluster: "front")
        #expect(cache.snapshot(for: node).resources(ofType: ResourceType.endpoint.typeURL).keys.sorted() == ["web"])
        cache.update([Self.scoped("web", port: 1, .all), Self.scoped("api", port: 2, .cluster("front"))])
        #expect(cache.snapshot(for: node).resources(ofType: ResourceType.endpoint.typeURL).keys.sorted() == ["api", "web"])
    }

    @Test func oneNodesSecretsWakeOnlyItsStreams() {
        let cache = SnapshotCache()
        let woken = Mutex<[String: [Int]]>([:])
        func watcher(_ name: String) -> Int {
            cache.addWatcher { generation in woken.withLock { $0[name, default: []].append(generation) } }
        }
        let first = watcher("n1")
        let second = watcher("n2")
        _ = watcher("unnamed")
        cache.watch(first, isFor: "n1")
        cache.watch(second, isFor: "n2")
        cache.updateIssued(["n1": [Self.scoped("cert", port: 1, .nodeID("n1"))]])
        // The same secrets again change nothing and wake nobody.
        cache.updateIssued(["n1": [Self.scoped("cert", port: 1, .nodeID("n1"))]])
        cache.update([Self.scoped("web", port: 1, .all)])
        #expect(woken.withLock { $0 } == ["n1": [1, 2], "n2": [2], "unnamed": [1, 2]])
        cache.updateIssued(["n1": [Self.scoped("cert", port: 2, .nodeID("n1"))]])
        // n2 is not woken by n1's renewal.
        #expect(woken.withLock { $0["n1"] } == [1, 2, 3])
        #expect(woken.withLock { $0["n2"] } == [2])
        cache.removeWatcher(first)
        cache.update([])
        #expect(woken.withLock { $0["n1"] } == [1, 2, 3], "a removed watcher is not called")
    }
}
