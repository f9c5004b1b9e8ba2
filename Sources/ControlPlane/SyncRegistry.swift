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

    private let entries = Mutex<[Int: ProxyStatus]>([:])
    private let nextID = Atomic<Int>(0)

    public init() {}

    public func open(protocolName: String) -> Int {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).newValue
        entries.withLock { $0[id] = ProxyStatus(streamID: id, protocolName: protocolName, connectedSince: Date()) }
        return id
    }

    public func close(_ id: Int) {
        _ = entries.withLock { $0.removeValue(forKey: id) }
    }

    public func update(_ id: Int, node: Envoy_Config_Core_V3_Node?, types: [ResourceType: TypeStatus]) {
        entries.withLock { entries in
            entries[id]?.node = node
            entries[id]?.types = types
        }
    }

    public func all() -> [ProxyStatus] {
        entries.withLock { Array($0.values) }.sorted { $0.streamID < $1.streamID }
    }
}
