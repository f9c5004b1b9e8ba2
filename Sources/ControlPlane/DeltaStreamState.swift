import Foundation
import SwiftProtobuf
import XDSAPI

/// The incremental (delta) ADS protocol for one stream: per type, the subscription and the version
/// of every resource the proxy holds, so only changes and removals are sent.
public struct DeltaStreamState: Sendable {
    public struct TypeState: Sendable {
        public var wildcard = false
        public var names: Set<String> = []
        /// What the proxy has, by name (from `initial_resource_versions` and what was sent since).
        public var clientVersions: [String: String] = [:]
        public var delivery = DeliveryState()
    }

    public private(set) var types = ResourceTypeTable<TypeState>()
    public private(set) var node: Envoy_Config_Core_V3_Node?
    private var nonceCounter = 0

    public init() {}

    public mutating func handle(_ request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest, snapshot: NodeSnapshot,
                                now: Date = Date()) -> [Envoy_Service_Discovery_V3_DeltaDiscoveryResponse] {
        if request.hasNode, node == nil { node = request.node }
        guard let type = ResourceType(typeURL: request.typeURL) else { return [] }
        let isFirst = !types.contains(type)
        if isFirst { types[type] = TypeState() }
        // Changed where it is kept: a copy changed and written back would copy the client's versions too.
        let newlySubscribed = types.modify(type) { state in
            if isFirst {
                state.clientVersions = request.initialResourceVersions
                state.wildcard = type.isWildcardByDefault && request.resourceNamesSubscribe.isEmpty
            }
            if !request.responseNonce.isEmpty, request.responseNonce == state.delivery.sentNonce {
                if request.hasErrorDetail {
                    state.delivery.rejected(request.errorDetail.message)
                } else {
                    state.delivery.acknowledged(version: state.delivery.sentVersion, at: now)
                }
            }
            // Subscription changes apply whatever the nonce: in delta they are not tied to a response.
            for name in request.resourceNamesSubscribe {
                if name == "*" { state.wildcard = true } else { state.names.insert(name) }
            }
            for name in request.resourceNamesUnsubscribe {
                if name == "*" { state.wildcard = false } else { state.names.remove(name) }
                state.clientVersions[name] = nil
            }
            return request.resourceNamesSubscribe.contains { state.clientVersions[$0] == nil }
        } ?? false
        guard let response = diff(type, snapshot: snapshot, now: now, force: isFirst || newlySubscribed) else {
            return []
        }
        return [response]
    }

    public mutating func snapshotChanged(_ snapshot: NodeSnapshot, now: Date = Date())
        -> [Envoy_Service_Discovery_V3_DeltaDiscoveryResponse]
    {
        var responses: [Envoy_Service_Discovery_V3_DeltaDiscoveryResponse] = []
        var changedClusters: [String] = []
        for type in ResourceType.allCases where types.contains(type) {
            if type == .endpoint, !changedClusters.isEmpty {
                // A changed cluster must see its endpoints again before it leaves warming.
                types.modify(type) { state in
                    for name in changedClusters { state.clientVersions[name] = nil }
                }
            }
            if let response = diff(type, snapshot: snapshot, now: now, force: false) {
                if type == .cluster { changedClusters = response.resources.map(\.name) }
                responses.append(response)
            }
        }
        return responses
    }

    private mutating func diff(_ type: ResourceType, snapshot: NodeSnapshot, now: Date, force: Bool)
        -> Envoy_Service_Discovery_V3_DeltaDiscoveryResponse?
    {
        let all = snapshot.resources(ofType: type.typeURL)
        let nonce = String(nonceCounter + 1)
        let response = types.modify(type) { state in
            Self.diff(type, state: &state, all: all, nonce: nonce, now: now, force: force)
        } ?? nil
        if response != nil { nonceCounter += 1 }
        return response
    }

    /// What the proxy lacks of `all` and what it holds that is gone, recorded as sent in `state`.
    private static func diff(_ type: ResourceType, state: inout TypeState, all: [String: VersionedResource],
                             nonce: String, now: Date, force: Bool) -> Envoy_Service_Discovery_V3_DeltaDiscoveryResponse? {
        let view = state.wildcard ? all : all.filter { state.names.contains($0.key) }
        let changed = view.values.filter { state.clientVersions[$0.name] != $0.version }.sorted { $0.name < $1.name }
        let removed = state.clientVersions.keys.filter { view[$0] == nil && (state.wildcard || state.names.contains($0)) }
            .sorted()
        guard force || !changed.isEmpty || !removed.isEmpty else { return nil }
        var response = Envoy_Service_Discovery_V3_DeltaDiscoveryResponse()
        response.typeURL = type.typeURL
        response.nonce = nonce
        response.systemVersionInfo = ContentHash.version(ofSet: Array(view.values))
        response.resources = changed.map { resource in
            var entry = Envoy_Service_Discovery_V3_Resource()
            entry.name = resource.name
            entry.version = resource.version
            entry.resource = resource.resource
            return entry
        }
        response.removedResources = removed
        for resource in changed { state.clientVersions[resource.name] = resource.version }
        for name in removed { state.clientVersions[name] = nil }
        state.delivery.sent(version: response.systemVersionInfo, nonce: response.nonce, at: now)
        return response
    }
}
