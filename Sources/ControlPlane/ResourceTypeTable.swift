/// A value per resource type, for the few types one stream uses. Every connected proxy's stream
/// keeps one, and a dictionary's hash table for five keys took half again the room of the values
/// (1.1 KB against 0.7 KB a stream).
public struct ResourceTypeTable<Value: Sendable>: Sendable {
    private var entries: ContiguousArray<(type: ResourceType, value: Value)> = []

    public init() {}

    public subscript(type: ResourceType) -> Value? {
        get { index(of: type).map { entries[$0].value } }
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
