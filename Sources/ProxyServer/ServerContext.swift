import Synchronization

/// Process-wide facts the listener stats need before the server object exists.
enum ServerContext {
    /// Worker (event loop) count, set from --concurrency before anything is compiled.
    nonisolated(unsafe) static var workerCount = 1
    static let totalConnections = Atomic<Int>(0)
}
