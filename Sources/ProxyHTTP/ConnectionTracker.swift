import NIOCore
import Synchronization

/// A downstream connection a listener can drain: an HTTP/1.1 connection answers its next request
/// with `connection: close`, an HTTP/2 one sends GOAWAY; either is closed after the drain time.
/// Called on the connection's own event loop.
public protocol DrainableConnection: AnyObject {
    func startDraining(closeAfter drainTime: TimeAmount)
}

/// The open connections of one listener, so a filter-chain change can drain them.
/// Touched when connections open and close and when draining starts, never per request.
public final class ConnectionTracker: Sendable {
    private let connections = Mutex<[ObjectIdentifier: Entry]>([:])

    struct Entry: @unchecked Sendable {
        // Used only on its own event loop (drain hops there first).
        weak var connection: (any DrainableConnection)?
        let loop: any EventLoop
    }

    public init() {}

    func register(_ connection: any DrainableConnection, loop: any EventLoop) {
        connections.withLock { $0[ObjectIdentifier(connection)] = Entry(connection: connection, loop: loop) }
    }

    func unregister(_ connection: any DrainableConnection) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(connection)) }
    }

    public var count: Int { connections.withLock { $0.count } }

    /// Drains every connection open now; connections accepted later are not affected.
    public func drainAll(closeAfter drainTime: TimeAmount) {
        let entries = connections.withLock { Array($0.values) }
        for entry in entries {
            entry.loop.execute {
                entry.connection?.startDraining(closeAfter: drainTime)
            }
        }
    }
}
