import Foundation
import Synchronization
import XDSAPI

/// Per connected proxy: who it is and, per type, what was sent, acknowledged or rejected. Feeds
/// `/debug/syncz` and the metrics.
public final class SyncRegistry: Sendable {
    public struct TypeStatus: Sendable {
        public var sentVersion: String?
        public var ackedVersion: String?
        public var nonce: String?
        public var nackMessage: String?
        public var ackLatencySeconds: Double?
        public var ackedAt: Date?
    }

    public struct ProxyStatus: Sendable {
        public var streamID: Int
        public var protocolName: String
        public var node: Envoy_Config_Core_V3_Node?
        public var connectedSince: Date
        public var types: [ResourceType: TypeStatus] = [:]
    }

    /// What the registry keeps of a stream: the status is read from the stream when asked for, not
    /// copied into the registry on every request (a copy per proxy, rebuilt on every ACK).
    private struct Entry {
        var protocolName: String
        var connectedSince: Date
        var status: @Sendable () -> (node: Envoy_Config_Core_V3_Node?, types: [ResourceType: TypeStatus])?
    }

    private let entries = Mutex<[Int: Entry]>([:])
    private let nextID = Atomic<Int>(0)

    public init() {}

    /// Registers a stream; `status` reads its node and per-type status (nil once it is gone).
    public func open(protocolName: String,
                     status: @escaping @Sendable () -> (node: Envoy_Config_Core_V3_Node?, types: [ResourceType: TypeStatus])?)
        -> Int
    {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        entries.withLock { $0[id] = Entry(protocolName: protocolName, connectedSince: Date(), status: status) }
        return id
    }

    public func close(_ id: Int) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }

    public var count: Int { entries.withLock { $0.count } }

    public func all() -> [ProxyStatus] {
        // The streams are asked outside the registry's lock: each answers under a lock of its own.
        let entries = entries.withLock { Array($0) }
        return entries.sorted { $0.key < $1.key }.compactMap { id, entry in
            guard let status = entry.status() else { return nil }
            return ProxyStatus(streamID: id, protocolName: entry.protocolName, node: status.node,
                               connectedSince: entry.connectedSince, types: status.types)
        }
    }
}
