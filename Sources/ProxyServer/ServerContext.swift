import NIOCore
import NIOPosix
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
    /// The server's own IPv4 address (the first interface's that is not loopback), which Envoy
    /// appends to x-forwarded-for for a peer on loopback; nil when there is none.
    static let localAddress: String? = {
        let devices = (try? System.enumerateDevices()) ?? []
        return devices.lazy.compactMap { device -> String? in
            guard case .v4? = device.address, let ip = device.address?.ipAddress, !ip.hasPrefix("127.") else { return nil }
            return ip
        }.first
    }()
}
