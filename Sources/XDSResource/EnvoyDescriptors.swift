import Foundation
import SwiftProtobuf
import SwiftProtobufPluginLibrary
import XDSAPI

/// The Envoy API's descriptors, decoded once from the set embedded in XDSAPI. The loader walks
/// config against them to report unknown fields and bad values with a field path and a line,
/// which swift-protobuf's JSON decoder cannot do.
public enum EnvoyDescriptors {
    /// Built once and never mutated afterwards (DescriptorSet is a tree of immutable classes).
    nonisolated(unsafe) public static let set: DescriptorSet = {
        guard let data = Data(base64Encoded: envoyAPIDescriptorSetBase64, options: .ignoreUnknownCharacters),
              let files = try? Google_Protobuf_FileDescriptorSet(serializedBytes: data)
        else { fatalError("XDSAPI's embedded descriptor set is corrupt; regenerate with scripts/generate-xds-api.sh") }
        return DescriptorSet(protos: files.file)
    }()

    public static func message(named fullName: String) -> Descriptor? {
        set.descriptor(named: fullName)
    }
}
