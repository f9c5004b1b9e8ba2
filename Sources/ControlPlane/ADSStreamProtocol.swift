import Foundation
import SwiftProtobuf
import XDSAPI

/// What the server needs of a per-stream protocol state machine, so state-of-the-world and delta
/// streams run through one loop.
protocol ADSStreamProtocol: Sendable {
    associatedtype Request: Message
    associatedtype Response: Message

    init()
    var node: Envoy_Config_Core_V3_Node? { get }
    mutating func handle(_ request: Request, snapshot: NodeSnapshot, now: Date) -> [Response]
    mutating func snapshotChanged(_ snapshot: NodeSnapshot, now: Date) -> [Response]
    func delivery(of type: ResourceType) -> DeliveryState?

    static var protocolName: String { get }
    static func node(of request: Request) -> Envoy_Config_Core_V3_Node?
    static func typeURL(of request: Request) -> String
    /// The names a request subscribes to (SotW: all it wants; delta: the ones it adds).
    static func subscribedNames(of request: Request) -> [String]
    static func errorMessage(of request: Request) -> String?
    static func typeURL(of response: Response) -> String
}

extension ADSStreamProtocol {
    /// Who is on the other end, once its first request said.
    public var identity: NodeIdentity {
        NodeIdentity(id: node?.id ?? "", cluster: node?.cluster ?? "")
    }

    var syncStatus: [ResourceType: SyncRegistry.TypeStatus] {
        Dictionary(uniqueKeysWithValues: ResourceType.allCases.compactMap { type in
            delivery(of: type).map { (type, $0.syncStatus) }
        })
    }
}

extension SotWStreamState: ADSStreamProtocol {
    static let protocolName = "SotW"
    func delivery(of type: ResourceType) -> DeliveryState? { types.read(type) { $0.delivery } }
    static func node(of request: Envoy_Service_Discovery_V3_DiscoveryRequest) -> Envoy_Config_Core_V3_Node? {
        request.hasNode ? request.node : nil
    }
    static func typeURL(of request: Envoy_Service_Discovery_V3_DiscoveryRequest) -> String { request.typeURL }
    static func subscribedNames(of request: Envoy_Service_Discovery_V3_DiscoveryRequest) -> [String] {
        request.resourceNames
    }
    static func errorMessage(of request: Envoy_Service_Discovery_V3_DiscoveryRequest) -> String? {
        request.hasErrorDetail ? request.errorDetail.message : nil
    }
    static func typeURL(of response: Envoy_Service_Discovery_V3_DiscoveryResponse) -> String { response.typeURL }
}

extension DeltaStreamState: ADSStreamProtocol {
    static let protocolName = "Delta"
    func delivery(of type: ResourceType) -> DeliveryState? { types.read(type) { $0.delivery } }
    static func node(of request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) -> Envoy_Config_Core_V3_Node? {
        request.hasNode ? request.node : nil
    }
    static func typeURL(of request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) -> String { request.typeURL }
    static func subscribedNames(of request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) -> [String] {
        request.resourceNamesSubscribe
    }
    static func errorMessage(of request: Envoy_Service_Discovery_V3_DeltaDiscoveryRequest) -> String? {
        request.hasErrorDetail ? request.errorDetail.message : nil
    }
    static func typeURL(of response: Envoy_Service_Discovery_V3_DeltaDiscoveryResponse) -> String { response.typeURL }
}
