import GRPCCore
import SwiftProtobuf
import Testing
import XDSAPI
@testable import ControlPlane

/// Requests are decoded without their node's extension list, and otherwise as they came.
@Suite struct NodeExtensionsFilterTests {
    static var envoyNode: Envoy_Config_Core_V3_Node {
        var node = Envoy_Config_Core_V3_Node()
        node.id = "sidecar~10.0.0.1~web.default~default.svc.cluster.local"
        node.cluster = "web"
        node.metadata.fields["NAMESPACE"] = Google_Protobuf_Value(stringValue: "default")
        node.userAgentName = "envoy"
        node.userAgentBuildVersion.version.majorNumber = 1
        node.clientFeatures = ["envoy.lb.does_not_support_overprovisioning"]
        node.extensions = (0..<40).map { index in
            var ext = Envoy_Config_Core_V3_Extension()
            ext.name = "envoy.filters.http.example\(index)"
            ext.category = "envoy.filters.http"
            ext.typeUrls = ["envoy.extensions.filters.http.example.v3.Config\(index)"]
            return ext
        }
        return node
    }

    @Test func aStateOfTheWorldRequestLosesOnlyTheExtensions() throws {
        var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
        request.versionInfo = "v1"
        request.node = Self.envoyNode
        request.resourceNames = ["a", "b"]
        request.typeURL = ResourceType.endpoint.typeURL
        request.responseNonce = "7"
        request.errorDetail.message = "bad"
        let bytes: [UInt8] = try request.serializedBytes()
        let decoded = try NodeTrimmingDeserializer<Envoy_Service_Discovery_V3_DiscoveryRequest>(
            filter: NodeExtensionsFilter(nodeField: 2)).deserialize(bytes)
        var expected = request
        expected.node.extensions = []
        #expect(decoded == expected)
        #expect(decoded.node.clientFeatures == ["envoy.lb.does_not_support_overprovisioning"])
    }

    @Test func aDeltaRequestLosesOnlyTheExtensions() throws {
        var request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
        request.node = Self.envoyNode
        request.typeURL = ResourceType.cluster.typeURL
        request.resourceNamesSubscribe = ["x"]
        request.initialResourceVersions = ["x": "1"]
        let bytes: [UInt8] = try request.serializedBytes()
        let decoded = try NodeTrimmingDeserializer<Envoy_Service_Discovery_V3_DeltaDiscoveryRequest>(
            filter: NodeExtensionsFilter(nodeField: 1)).deserialize(bytes)
        var expected = request
        expected.node.extensions = []
        #expect(decoded == expected)
    }

    @Test func requestsWithoutExtensionsOrNotWellFormedAreDecodedAsTheyCame() throws {
        var plain = Envoy_Service_Discovery_V3_DiscoveryRequest()
        plain.typeURL = ResourceType.cluster.typeURL
        plain.node.id = "n"
        let filter = NodeExtensionsFilter(nodeField: 2)
        let bytes: [UInt8] = try plain.serializedBytes()
        #expect(bytes.withUnsafeBytes { filter.filtered($0) } == nil)

        var full = Envoy_Service_Discovery_V3_DiscoveryRequest()
        full.node = Self.envoyNode
        let truncated = Array(try full.serializedBytes() as [UInt8]).dropLast(5)
        #expect(Array(truncated).withUnsafeBytes { filter.filtered($0) } == nil)
        #expect(throws: RPCError.self) {
            try NodeTrimmingDeserializer<Envoy_Service_Discovery_V3_DiscoveryRequest>(filter: filter)
                .deserialize(Array(truncated))
        }
    }
}
