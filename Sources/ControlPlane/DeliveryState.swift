import Foundation

/// Per stream and resource type: what was last sent, and what the proxy made of it. Shared by the
/// state-of-the-world and delta protocols, and what /debug/syncz reports.
public struct DeliveryState: Sendable {
    public var sentVersion: String?
    public var sentNonce: String?
    public var sentAt: Date?
    public var ackedVersion: String?
    public var nackMessage: String?
    /// Seconds from the last send to its ACK.
    public var ackLatency: Double?
    /// When the proxy last acknowledged (meshd status shows when an edit reached each proxy).
    public var ackedAt: Date?

    public init() {}

    mutating func sent(version: String, nonce: String, at now: Date) {
        sentVersion = version
        sentNonce = nonce
        sentAt = now
    }

    mutating func acknowledged(version: String?, at now: Date) {
        ackedVersion = version
        ackedAt = now
        nackMessage = nil
        ackLatency = sentAt.map { now.timeIntervalSince($0) }
    }

    mutating func rejected(_ message: String) {
        nackMessage = message
    }

    var syncStatus: SyncRegistry.TypeStatus {
        SyncRegistry.TypeStatus(sentVersion: sentVersion, ackedVersion: ackedVersion, nonce: sentNonce,
                                nackMessage: nackMessage, ackLatencySeconds: ackLatency, ackedAt: ackedAt)
    }
}
