import Foundation
import SwiftProtobuf
import XDSAPI

/// The state-of-the-world ADS protocol for one stream, as a plain value: requests and snapshot
/// changes go in, responses come out. Per type it tracks the subscription, what was sent (version,
/// nonce) and what the proxy acknowledged or rejected.
public struct SotWStreamState: Sendable {
    public struct TypeState: Sendable {
        public var wildcard = false
        public var names: Set<String> = []
        public var delivery = DeliveryState()
    }

    public private(set) var types = ResourceTypeTable<TypeState>()
    public private(set) var node: Envoy_Config_Core_V3_Node?
    private var nonceCounter = 0

    public init() {}

    /// Handles a request: records ACK or NACK, updates the subscription, and answers when the
    /// proxy has nothing yet or asked for different names.
    public mutating func handle(_ request: Envoy_Service_Discovery_V3_DiscoveryRequest, snapshot: NodeSnapshot,
                                now: Date = Date()) -> [Envoy_Service_Discovery_V3_DiscoveryResponse] {
        if request.hasNode, node == nil { node = request.node }
        guard let type = ResourceType(typeURL: request.typeURL) else { return [] }
        let isFirst = !types.contains(type)
        var state = types[type] ?? TypeState()
        if !request.responseNonce.isEmpty {
            // A nonce other than the latest answers an older response: ignored, as the protocol says.
            guard request.responseNonce == state.delivery.sentNonce else { return [] }
            if request.hasErrorDetail {
                state.delivery.rejected(request.errorDetail.message)
            } else {
                state.delivery.acknowledged(version: request.versionInfo, at: now)
            }
        }
        let names = Set(request.resourceNames)
        let wildcard = names.contains("*") || (type.isWildcardByDefault && names.isEmpty && (isFirst || state.wildcard))
        let subscriptionChanged = wildcard != state.wildcard || names.subtracting(["*"]) != state.names
        state.wildcard = wildcard
        state.names = names.subtracting(["*"])
        types[type] = state
        if isFirst, request.responseNonce.isEmpty, !request.versionInfo.isEmpty,
           request.versionInfo == ContentHash.version(ofSet: Self.view(of: type, state: state, snapshot: snapshot)) {
            // A proxy back after a reconnect (or a meshd restart) that already has this exact content:
            // versions are content hashes, so there is nothing to send again.
            state.delivery.sentVersion = request.versionInfo
            state.delivery.ackedVersion = request.versionInfo
            types[type] = state
            return []
        }
        guard isFirst || subscriptionChanged || (request.responseNonce.isEmpty && !request.hasErrorDetail) else {
            return []
        }
        return [response(for: type, snapshot: snapshot, now: now)]
    }

    /// After the snapshot changed: responses for every subscribed type whose view changed, in
    /// make-before-break order; endpoints go out again whenever clusters did.
    public mutating func snapshotChanged(_ snapshot: NodeSnapshot, now: Date = Date())
        -> [Envoy_Service_Discovery_V3_DiscoveryResponse]
    {
        var responses: [Envoy_Service_Discovery_V3_DiscoveryResponse] = []
        var clustersChanged = false
        for type in ResourceType.allCases {
            // Sorted and hashed once: the version decides whether to send, and the same view is sent.
            guard let (view, version, sent) = types.read(type, { state in
                let view = Self.view(of: type, state: state, snapshot: snapshot).sorted { $0.name < $1.name }
                return (view, ContentHash.version(ofSortedSet: view), state.delivery.sentVersion)
            }) else { continue }
            if version != sent || (type == .endpoint && clustersChanged) {
                responses.append(response(for: type, sortedView: view, version: version, now: now))
                if type == .cluster { clustersChanged = true }
            }
        }
        return responses
    }

    /// Static, so that reading a type's state in place does not capture (and copy) the whole stream state.
    private static func view(of type: ResourceType, state: TypeState, snapshot: NodeSnapshot) -> [VersionedResource] {
        let all = snapshot.resources(ofType: type.typeURL)
        if state.wildcard { return Array(all.values) }
        return state.names.compactMap { all[$0] }
    }

    private mutating func response(for type: ResourceType, snapshot: NodeSnapshot, now: Date)
        -> Envoy_Service_Discovery_V3_DiscoveryResponse
    {
        let unsorted = types.read(type) { Self.view(of: type, state: $0, snapshot: snapshot) } ?? []
        let sorted = unsorted.sorted { $0.name < $1.name }
        return response(for: type, sortedView: sorted, version: ContentHash.version(ofSortedSet: sorted), now: now)
    }

    /// A response of `sortedView` (sorted by name), whose set version is `version`; recorded as sent in
    /// the type's state, which both callers have made already.
    private mutating func response(for type: ResourceType, sortedView view: [VersionedResource], version: String,
                                   now: Date) -> Envoy_Service_Discovery_V3_DiscoveryResponse {
        nonceCounter += 1
        var response = Envoy_Service_Discovery_V3_DiscoveryResponse()
        response.typeURL = type.typeURL
        response.versionInfo = version
        response.resources = view.map(\.resource)
        response.nonce = String(nonceCounter)
        let nonce = response.nonce
        types.modify(type) { $0.delivery.sent(version: version, nonce: nonce, at: now) }
        return response
    }
}
