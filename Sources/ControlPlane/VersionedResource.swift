import Foundation
import SwiftProtobuf
import XDSResource

/// Which proxies a resource is for, from where its file sits: `nodes/<cluster>/...` serves proxies
/// whose `node.cluster` (Envoy's --service-cluster) is `<cluster>`; `node-ids/<id>/...` serves the
/// proxy whose `node.id` is `<id>`; anything else serves every proxy.
public enum NodeScope: Sendable, Hashable, CustomStringConvertible {
    case all
    case cluster(String)
    case nodeID(String)

    public func matches(_ node: NodeIdentity) -> Bool {
        switch self {
        case .all: true
        case .cluster(let cluster): node.cluster == cluster
        case .nodeID(let id): node.id == id
        }
    }

    /// More specific scopes win over broader ones when both define a name.
    var specificity: Int {
        switch self {
        case .all: 0
        case .cluster: 1
        case .nodeID: 2
        }
    }

    public var description: String {
        switch self {
        case .all: "*"
        case .cluster(let cluster): "cluster=\(cluster)"
        case .nodeID(let id): "id=\(id)"
        }
    }
}

/// The parts of an Envoy node that choose what it is served.
public struct NodeIdentity: Sendable, Hashable {
    public var id: String
    public var cluster: String

    public init(id: String, cluster: String) {
        self.id = id
        self.cluster = cluster
    }
}

/// One xDS resource as meshd serves it: packed, named, versioned by content, and traced to its file.
public struct VersionedResource: Sendable, Equatable {
    public var typeURL: String
    public var name: String
    /// A hash of the resource's deterministic encoding: stable across restarts, so a restarted meshd
    /// does not re-push what proxies already have.
    public var version: String
    public var resource: Google_Protobuf_Any
    public var file: String
    public var line: Int?
    public var scope: NodeScope

    public init(typeURL: String, name: String, version: String, resource: Google_Protobuf_Any, file: String,
                line: Int?, scope: NodeScope) {
        self.typeURL = typeURL
        self.name = name
        self.version = version
        self.resource = resource
        self.file = file
        self.line = line
        self.scope = scope
    }

    public static func == (lhs: VersionedResource, rhs: VersionedResource) -> Bool {
        lhs.typeURL == rhs.typeURL && lhs.name == rhs.name && lhs.version == rhs.version && lhs.scope == rhs.scope
    }
}

/// Content hashes for versions: FNV-1a 64 over bytes, printed as 16 hex digits.
public enum ContentHash {
    public static func fnv1a(_ bytes: some Sequence<UInt8>, seed: UInt64 = 0xcbf2_9ce4_8422_2325) -> UInt64 {
        var hash = seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return hash
    }

    /// Sixteen lower-case hex digits, written straight into the string's storage (a stream makes one
    /// for every type it holds at every change).
    public static func hex(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for index in 0..<16 {
                let nibble = Int((value >> UInt64(60 - 4 * index)) & 0xF)
                buffer[index] = digits.utf8Start[nibble]
            }
            return 16
        }
    }

    /// The version of a message: its deterministic binary encoding, hashed.
    public static func version(of message: any Message) throws -> String {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes: [UInt8] = try message.serializedBytes(options: options)
        return hex(fnv1a(bytes))
    }

    /// The message packed as its deterministic encoding, and that encoding's hash as its version. An
    /// Any made from a message encodes it again each time it is serialized; one made from bytes copies
    /// them, so a response to a thousand proxies encodes each resource once, not a thousand times.
    /// `typeURL`, when the caller has it as a constant, is shared rather than made again (meshd packs
    /// a secret for every proxy it issues a certificate to).
    public static func packed(_ message: any Message, typeURL: String? = nil) throws
        -> (resource: Google_Protobuf_Any, version: String)
    {
        var options = BinaryEncodingOptions()
        options.useDeterministicOrdering = true
        let bytes: [UInt8] = try message.serializedBytes(options: options)
        var any = Google_Protobuf_Any()
        any.typeURL = typeURL ?? "type.googleapis.com/" + type(of: message).protoMessageName
        any.value = Data(bytes)
        return (any, hex(fnv1a(bytes)))
    }

    /// A SotW `version_info` for a set of resources: a hash of their sorted names and versions.
    public static func version(ofSet resources: [VersionedResource]) -> String {
        version(ofSortedSet: resources.sorted(by: { $0.name < $1.name }))
    }

    /// The same, for resources already sorted by name.
    public static func version(ofSortedSet resources: [VersionedResource]) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for resource in resources {
            hash = fnv1a(resource.name.utf8, seed: hash)
            hash = fnv1a([0], seed: hash)
            hash = fnv1a(resource.version.utf8, seed: hash)
        }
        return hex(hash)
    }
}
