import Synchronization

/// The resources meshd serves, per node: the source publishes, streams read. It never touches gRPC
/// (the server only streams what the cache says), as go-control-plane splits them.
///
/// A thousand streams ask for their node's view after every change, so views are not built from
/// the whole resource list each time: what a cluster's nodes share is built once per change and
/// shared, and only a node's own resources (its issued secrets) are laid over it. A change to one
/// node's secrets wakes that node's streams only.
public final class SnapshotCache: Sendable {
    private struct State {
        var resources: [VersionedResource] = []
        /// The files' resources scoped to one node id, by node id, in file order.
        var nodeScoped: [String: [VersionedResource]] = [:]
        /// Secrets meshd's CA issued, by the node id each is scoped to.
        var issued: [String: [VersionedResource]] = [:]
        var generation = 0
        var watchers: [Int: Watcher] = [:]
        var nextWatcher = 0
        /// What the nodes of a cluster are served before node-id scoped resources, built on first
        /// use after each change of `resources`.
        var clusterViews: [String: [String: [String: VersionedResource]]] = [:]
    }

    private struct Watcher {
        /// Told the new generation, on the publishing thread and outside the cache's lock.
        var notify: @Sendable (Int) -> Void
        /// The node whose stream this is, once it has said (nil: woken by every change).
        var nodeID: String?
    }

    private let state = Mutex(State())

    public init() {}

    /// Publishes a new resource set and wakes every stream (each sees only the latest).
    public func update(_ resources: [VersionedResource]) {
        let (watchers, generation) = state.withLock { state -> ([@Sendable (Int) -> Void], Int) in
            state.resources = resources
            state.nodeScoped = [:]
            for resource in resources {
                if case .nodeID(let id) = resource.scope { state.nodeScoped[id, default: []].append(resource) }
            }
            state.clusterViews = [:]
            state.generation += 1
            return (state.watchers.values.map(\.notify), state.generation)
        }
        for notify in watchers { notify(generation) }
    }

    /// Publishes the CA's issued secrets (kept apart from the files' resources), by node id, and
    /// wakes the streams of the nodes whose secrets changed.
    public func updateIssued(_ byNode: [String: [VersionedResource]]) {
        let (watchers, generation) = state.withLock { state -> ([@Sendable (Int) -> Void], Int) in
            var changed = Set<String>()
            for (node, resources) in byNode where state.issued[node] != resources { changed.insert(node) }
            for node in state.issued.keys where byNode[node] == nil { changed.insert(node) }
            state.issued = byNode
            guard !changed.isEmpty else { return ([], state.generation) }
            state.generation += 1
            let woken = state.watchers.values.filter { $0.nodeID.map(changed.contains) ?? true }
            return (woken.map(\.notify), state.generation)
        }
        for notify in watchers { notify(generation) }
    }

    public var generation: Int { state.withLock { $0.generation } }

    public var allResources: [VersionedResource] { state.withLock { $0.resources } }

    /// What `node` is served: every resource whose scope matches; a more specific scope wins a name
    /// (between equals, the first: files before issued secrets).
    public func snapshot(for node: NodeIdentity) -> NodeSnapshot {
        state.withLock { state in
            let view: [String: [String: VersionedResource]]
            if let shared = state.clusterViews[node.cluster] {
                view = shared
            } else {
                view = Self.clusterView(of: state.resources, cluster: node.cluster)
                state.clusterViews[node.cluster] = view
            }
            let scoped = state.nodeScoped[node.id] ?? []
            let issued = state.issued[node.id] ?? []
            return NodeSnapshot(shared: view, own: scoped.isEmpty ? issued : scoped + issued)
        }
    }

    /// The resources scoped to every node or to `cluster`, a cluster's winning a name.
    private static func clusterView(of resources: [VersionedResource],
                                    cluster: String) -> [String: [String: VersionedResource]] {
        var chosen: [String: [String: VersionedResource]] = [:]
        for resource in resources {
            switch resource.scope {
            case .all: break
            case .cluster(let scoped) where scoped == cluster: break
            case .cluster, .nodeID: continue
            }
            if let existing = chosen[resource.typeURL]?[resource.name],
               existing.scope.specificity >= resource.scope.specificity { continue }
            chosen[resource.typeURL, default: [:]][resource.name] = resource
        }
        return chosen
    }

    /// Calls `notify` with each new generation that concerns the watcher (every change until
    /// `watch(_:isFor:)` names its node), on the publishing thread, outside the cache's lock. An
    /// ADS stream answers it on a short-lived task, or leaves it to the task already writing.
    public func addWatcher(_ notify: @escaping @Sendable (Int) -> Void) -> Int {
        state.withLock { state -> Int in
            state.nextWatcher += 1
            state.watchers[state.nextWatcher] = Watcher(notify: notify)
            return state.nextWatcher
        }
    }

    public func removeWatcher(_ id: Int) {
        _ = state.withLock { $0.watchers.removeValue(forKey: id) }
    }

    /// Names the node a watcher serves: changes to other nodes' secrets no longer wake it.
    public func watch(_ id: Int, isFor nodeID: String) {
        state.withLock { $0.watchers[id]?.nodeID = nodeID }
    }
}

/// One node's view: its cluster's resources, shared by every node of the cluster, and the node's
/// own (node-scoped files, then its issued secrets), laid over them when a type is asked for. Every
/// stream takes a snapshot at each change and for each request it answers; laying the node's own
/// over a copy of the shared tables there copied them each time.
public struct NodeSnapshot: Sendable {
    /// By type URL, then by name.
    private let shared: [String: [String: VersionedResource]]
    /// In order: of two with one name, the first wins; any of them wins over a shared one.
    private let own: [VersionedResource]

    init(shared: [String: [String: VersionedResource]], own: [VersionedResource]) {
        self.shared = shared
        self.own = own
    }

    /// The resources of `typeURL` by name.
    public func resources(ofType typeURL: String) -> [String: VersionedResource] {
        var resources = shared[typeURL] ?? [:]
        for resource in own where resource.typeURL == typeURL {
            if let existing = resources[resource.name], case .nodeID = existing.scope { continue }
            resources[resource.name] = resource
        }
        return resources
    }
}
