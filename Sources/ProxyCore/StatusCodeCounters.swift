import Atomics

/// Envoy's per-response-code counters (`<scope>upstream_rq_200`, `<scope>upstream_rq_2xx`,
/// `<scope>upstream_rq_completed`). Every code has a slot in one allocation, so the hot path never
/// creates a stat or takes a lock, and names are built only when admin lists them. Codes never
/// seen are not listed, as in Envoy.
public final class StatusCodeCounters: @unchecked Sendable {
    private static let codeRange = 100...599
    private static let slotCount = codeRange.count

    public let scope: String
    public let stem: String
    public let extractedScope: String
    public let scopeTags: [StatTags.Tag]
    public let completed: Counter
    private let classes: [Counter]
    /// Counts for codes 100...599, then one "ever used" flag per code.
    private let storage: UnsafeMutablePointer<UnsafeAtomic<UInt64>.Storage>

    /// - Parameters:
    ///   - scope: the printed prefix, `cluster.web.` or `cluster.web.external.`.
    ///   - stem: `upstream_rq` or `downstream_rq`.
    ///   - extractedScope: the tag-extracted prefix, `cluster.` or `cluster.external.`.
    ///   - scopeTags: tags every counter here carries (`envoy_cluster_name`).
    public init(scope: String, stem: String, extractedScope: String, scopeTags: [StatTags.Tag]) {
        self.scope = scope
        self.stem = stem
        self.extractedScope = extractedScope
        self.scopeTags = scopeTags
        classes = (1...5).map { codeClass in
            Counter(name: "\(scope)\(stem)_\(codeClass)xx",
                    tags: StatTags(extractedName: "\(extractedScope)\(stem)_xx",
                                   tags: [StatTags.Tag("envoy_response_code_class", String(codeClass))] + scopeTags))
        }
        completed = Counter(name: "\(scope)\(stem)_completed",
                            tags: StatTags(extractedName: "\(extractedScope)\(stem)_completed", tags: scopeTags))
        storage = .allocate(capacity: 2 * Self.slotCount)
        storage.initialize(repeating: .init(0), count: 2 * Self.slotCount)
    }

    deinit {
        storage.deinitialize(count: 2 * Self.slotCount)
        storage.deallocate()
    }

    /// Counts one response: its code, its class, and completion.
    public func record(status: Int) {
        if Self.codeRange.contains(status) {
            let index = status - Self.codeRange.lowerBound
            UnsafeAtomic<UInt64>(at: storage + index).wrappingIncrement(ordering: .relaxed)
            let used = UnsafeAtomic<UInt64>(at: storage + Self.slotCount + index)
            if used.load(ordering: .relaxed) == 0 { used.store(1, ordering: .relaxed) }
            classes[status / 100 - 1].increment()
        }
        completed.increment()
    }

    public func count(status: Int) -> UInt64 {
        guard Self.codeRange.contains(status) else { return 0 }
        return UnsafeAtomic<UInt64>(at: storage + (status - Self.codeRange.lowerBound)).load(ordering: .relaxed)
    }

    /// The counters that were ever incremented, as listed by admin.
    public func usedValues() -> [CounterValue] {
        var values: [CounterValue] = []
        for index in 0..<Self.slotCount
        where UnsafeAtomic<UInt64>(at: storage + Self.slotCount + index).load(ordering: .relaxed) != 0 {
            let code = index + Self.codeRange.lowerBound
            values.append(CounterValue(
                name: "\(scope)\(stem)_\(code)",
                tags: StatTags(extractedName: "\(extractedScope)\(stem)",
                               tags: [StatTags.Tag("envoy_response_code", String(code))] + scopeTags),
                value: count(status: code), used: true))
        }
        for counter in classes + [completed] where counter.used {
            values.append(CounterValue(counter))
        }
        return values
    }

    public func reset() {
        for index in 0..<Self.slotCount {
            UnsafeAtomic<UInt64>(at: storage + index).store(0, ordering: .relaxed)
        }
        for counter in classes + [completed] { counter.reset() }
    }
}

/// A counter's name, tags and value at the moment admin read it.
public struct CounterValue: Sendable {
    public var name: String
    public var tags: StatTags
    public var value: UInt64
    public var used: Bool

    public init(name: String, tags: StatTags, value: UInt64, used: Bool) {
        self.name = name
        self.tags = tags
        self.value = value
        self.used = used
    }

    public init(_ counter: Counter) {
        self.init(name: counter.name, tags: counter.tags, value: counter.value, used: counter.used)
    }
}
