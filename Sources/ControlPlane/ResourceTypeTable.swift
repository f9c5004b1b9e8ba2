/// A value per resource type, for the few types one stream uses. Every connected proxy's stream
/// keeps one, and a dictionary's hash table for five keys took half again the room of the values
/// (1.1 KB against 0.7 KB a stream).
public struct ResourceTypeTable<Value: Sendable>: Sendable {
    private var entries: ContiguousArray<(type: ResourceType, value: Value)> = []

    public init() {}

    public subscript(type: ResourceType) -> Value? {
        get { read(type) { $0 } }
        set {
            if let index = index(of: type) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                // Grown to the exact count: an array doubles its room as it grows, and a stream adds
                // its types one at a time, once.
                var grown = ContiguousArray<(type: ResourceType, value: Value)>()
                grown.reserveCapacity(entries.count + 1)
                grown.append(contentsOf: entries)
                grown.append((type, newValue))
                entries = grown
            }
        }
    }

    /// Whether `type` has a value, without copying it out.
    public func contains(_ type: ResourceType) -> Bool { index(of: type) != nil }

    /// What `body` makes of `type`'s value, read where it is (nil when there is none): a stream's
    /// per-type state holds a set and several strings, each retained and released by a copy.
    public func read<Result>(_ type: ResourceType, _ body: (Value) throws -> Result) rethrows -> Result? {
        guard let index = index(of: type) else { return nil }
        return try entries.withUnsafeBufferPointer { try body($0[index].value) }
    }

    /// Changes `type`'s value where it is; nil when there is none.
    @discardableResult
    public mutating func modify<Result>(_ type: ResourceType, _ body: (inout Value) throws -> Result) rethrows -> Result? {
        guard let index = index(of: type) else { return nil }
        return try body(&entries[index].value)
    }

    /// Found through the buffer: reading an entry's type through the array's subscript (or
    /// `first(where:)`) copies the whole entry, value and all, and a stream looks up its types
    /// several times a push (~25 copies a stream a push, each retaining the value's storage).
    private func index(of type: ResourceType) -> Int? {
        entries.withUnsafeBufferPointer { entries in
            for index in entries.indices where entries[index].type == type { return index }
            return nil
        }
    }
}
