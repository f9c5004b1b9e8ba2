import Atomics

/// Publishes an immutable config snapshot to every event loop through one atomic reference.
/// A request loads the current snapshot once at its start and finishes on it, so a push never
/// changes a request in flight.
public final class SnapshotHolder<Snapshot: AnyObject & Sendable>: Sendable {
    private let current: ManagedAtomic<Box>

    private final class Box: AtomicReference, Sendable {
        let snapshot: Snapshot
        init(_ snapshot: Snapshot) { self.snapshot = snapshot }
    }

    public init(_ initial: Snapshot) {
        current = ManagedAtomic(Box(initial))
    }

    public func load() -> Snapshot { current.load(ordering: .acquiring).snapshot }

    public func store(_ snapshot: Snapshot) { current.store(Box(snapshot), ordering: .releasing) }
}
