import NIOCore
import Synchronization

/// The open connections of one listener, so a filter-chain change can drain them: each answers
/// its next request with `connection: close`, and one still open after the drain time is closed.
/// Touched when connections open and close and when draining starts, never per request.
public final class ConnectionTracker: Sendable {
    private let connections = Mutex<[ObjectIdentifier: Entry]>([:])

    struct Entry: @unchecked Sendable {
        // Used only on its own event loop (drain hops there first).
        weak var manager: HTTPConnectionManager?
        let loop: any EventLoop
    }

    public init() {}

    func register(_ manager: HTTPConnectionManager, loop: any EventLoop) {
        connections.withLock { $0[ObjectIdentifier(manager)] = Entry(manager: manager, loop: loop) }
    }

    func unregister(_ manager: HTTPConnectionManager) {
        _ = connections.withLock { $0.removeValue(forKey: ObjectIdentifier(manager)) }
    }

    public var count: Int { connections.withLock { $0.count } }

    /// Drains every connection open now; connections accepted later are not affected.
    public func drainAll(closeAfter drainTime: TimeAmount) {
        let entries = connections.withLock { Array($0.values) }
        for entry in entries {
            entry.loop.execute {
                entry.manager?.startDraining(closeAfter: drainTime)
            }
        }
    }
}
