import Synchronization

/// The resources meshd serves, per node: the source publishes, streams read. It never touches gRPC
/// (the server only streams what the cache says), as go-control-plane splits them.
public final class SnapshotCache: Sendable {
    private struct State {
        var resources: [VersionedResource] = []
        /// Secrets meshd's CA issued, each scoped to its proxy's node id.
        var issued: [VersionedResource] = []
        var generation = 0
        var watchers: [Int: AsyncStream<Int>.Continuation] = [:]
        var nextWatcher = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Publishes a new resource set and wakes every stream (each sees only the latest).
    public func update(_ resources: [VersionedResource]) {
        publish { $0.resources = resources }
    }

    /// Publishes the CA's issued secrets (kept apart from the files' resources) and wakes every stream.
    public func updateIssued(_ resources: [VersionedResource]) {
        publish { $0.issued = resources }
    }

    private func publish(_ change: (inout State) -> Void) {
        let (watchers, generation) = state.withLock { state -> ([AsyncStream<Int>.Continuation], Int) in
            change(&state)
            state.generation += 1
            return (Array(state.watchers.values), state.generation)
        }
        for watcher in watchers { watcher.yield(generation) }
    }

    public var generation: Int { state.withLock { $0.generation } }

    public var allResources: [VersionedResource] { state.withLock { $0.resources } }

    /// What `node` is served: every resource whose scope matches; a more specific scope wins a name.
    public func snapshot(for node: NodeIdentity) -> NodeSnapshot {
        let resources = state.withLock { $0.resources + $0.issued }
        var chosen: [String: [String: VersionedResource]] = [:]
        for resource in resources where resource.scope.matches(node) {
            if let existing = chosen[resource.typeURL]?[resource.name],
               existing.scope.specificity >= resource.scope.specificity { continue }
            chosen[resource.typeURL, default: [:]][resource.name] = resource
        }
        return NodeSnapshot(resources: chosen)
    }

    /// Generations as they are published; a slow reader skips to the newest (bounded memory).
    public func updates() -> AsyncStream<Int> {
        let (stream, continuation) = AsyncStream<Int>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id = state.withLock { state -> Int in
            state.nextWatcher += 1
            state.watchers[state.nextWatcher] = continuation
            return state.nextWatcher
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }
}

/// One node's view: resources by type URL, then by name.
public struct NodeSnapshot: Sendable {
    public var resources: [String: [String: VersionedResource]]

    public init(resources: [String: [String: VersionedResource]] = [:]) {
        self.resources = resources
    }

    public func resources(ofType typeURL: String) -> [String: VersionedResource] {
        resources[typeURL] ?? [:]
    }
}
