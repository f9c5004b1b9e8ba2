import Synchronization

/// Process-wide downstream connection ids (`%CONNECTION_ID%`), increasing from 1.
public enum ConnectionIDs {
    private static let last = Atomic<UInt64>(0)

    public static func next() -> UInt64 {
        last.wrappingAdd(1, ordering: .relaxed).newValue
    }
}
