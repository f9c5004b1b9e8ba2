/// A value per resource type, for the few types one stream uses. Every connected proxy's stream
/// keeps one, and a dictionary's hash table for five keys took half again the room of the values
/// (1.1 KB against 0.7 KB a stream).
public struct ResourceTypeTable<Value: Sendable>: Sendable {
    private var entries: ContiguousArray<(type: ResourceType, value: Value)> = []

    public init() {}

    public subscript(type: ResourceType) -> Value? {
        get { entries.first { $0.type == type }?.value }
        set {
            if let index = entries.firstIndex(where: { $0.type == type }) {
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
}
