import NIOCore
import ProxyTracing
import Synchronization

/// Process-wide facts the listener stats need before the server object exists.
enum ServerContext {
    /// Worker (event loop) count, set from --concurrency before anything is compiled.
    nonisolated(unsafe) static var workerCount = 1
    static let totalConnections = Atomic<Int>(0)
    /// The node and where tracers report from (the first worker; nil in validate mode), set from
    /// the bootstrap before listeners are compiled.
    nonisolated(unsafe) static var tracing = HTTPTracers.Context(nodeID: "", serviceCluster: "", zone: "", version: "",
                                                                 loop: nil)
}
