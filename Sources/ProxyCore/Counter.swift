import Synchronization

/// A monotonically increasing stat, updated lock-free from any event loop.
public final class Counter: Sendable {
    public let name: String
    public let tags: StatTags
    private let storage = Atomic<UInt64>(0)
    private let everUsed = Atomic<Bool>(false)

    public init(name: String, tags: StatTags) {
        self.name = name
        self.tags = tags
    }

    @inlinable public func increment() { add(1) }

    public func add(_ amount: UInt64) {
        storage.wrappingAdd(amount, ordering: .relaxed)
        if !everUsed.load(ordering: .relaxed) { everUsed.store(true, ordering: .relaxed) }
    }

    public var value: UInt64 { storage.load(ordering: .relaxed) }

    /// Whether the counter was ever incremented (Envoy's `usedonly`), even if reset since.
    public var used: Bool { everUsed.load(ordering: .relaxed) }

    public func reset() { storage.store(0, ordering: .relaxed) }
}

/// A value that goes up and down (active connections, live flag).
public final class Gauge: Sendable {
    public let name: String
    public let tags: StatTags
    private let storage = Atomic<Int64>(0)
    private let everUsed = Atomic<Bool>(false)
    /// A gauge read from other state when it is listed (circuit breakers' `remaining_*`), so the
    /// request path never updates it.
    private let compute: (@Sendable () -> Int64)?

    public init(name: String, tags: StatTags, compute: (@Sendable () -> Int64)? = nil) {
        self.name = name
        self.tags = tags
        self.compute = compute
    }

    public func increment() { add(1) }
    public func decrement() { add(-1) }

    public func add(_ amount: Int64) {
        storage.wrappingAdd(amount, ordering: .relaxed)
        if !everUsed.load(ordering: .relaxed) { everUsed.store(true, ordering: .relaxed) }
    }

    public func set(_ value: Int64) {
        storage.store(value, ordering: .relaxed)
        if !everUsed.load(ordering: .relaxed) { everUsed.store(true, ordering: .relaxed) }
    }

    public var value: Int64 { compute?() ?? storage.load(ordering: .relaxed) }
    public var used: Bool { compute != nil || everUsed.load(ordering: .relaxed) }
}
