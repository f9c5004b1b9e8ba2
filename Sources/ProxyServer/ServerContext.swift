import NIOCore
import Synchronization

/// Process-wide facts the listener stats need before the server object exists.
enum ServerContext {
    /// Worker (event loop) count, set from --concurrency before anything is compiled.
    nonisolated(unsafe) static var workerCount = 1
    static let totalConnections = Atomic<Int>(0)
    /// The node, for tracing tags; set from the bootstrap before listeners are compiled.
    nonisolated(unsafe) static var nodeID = ""
    nonisolated(unsafe) static var serviceCluster = ""
    /// Where tracers send their reports from (the first worker); nil in validate mode.
    nonisolated(unsafe) static var reportLoop: (any EventLoop)?
}
