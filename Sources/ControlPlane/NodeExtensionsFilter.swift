import GRPCCore
import GRPCProtobuf
import SwiftProtobuf

/// Drops `node.extensions` from a discovery request's bytes before they are decoded. Envoy lists
/// every extension it was built with in its node (516 entries, ~60 KB from Envoy 1.40) and, unless
/// `set_node_on_first_message_only` is set, sends the node with every request: decoded, that is
/// ~230 KB of messages per ACK, which meshd never reads. A thousand Envoys connecting at once held
/// all of theirs at the same time, and meshd's RSS kept the peak.
///
/// Works on the protobuf wire format only as far as the node field: bytes it does not understand
/// are decoded as they came, so the message decoder reports what is wrong with them.
struct NodeExtensionsFilter {
    /// The node's field number in the request message (`DiscoveryRequest`: 2, `DeltaDiscoveryRequest`: 1).
    let nodeField: UInt64
    /// `Node.extensions`.
    static let extensionsField: UInt64 = 9

    /// The request without the node's extensions, or nil when it has none to drop (or is not
    /// well-formed as far as this reads).
    func filtered(_ bytes: UnsafeRawBufferPointer) -> [UInt8]? {
        var reader = WireReader(bytes)
        while !reader.atEnd {
            let fieldStart = reader.offset
            guard let tag = reader.varint(), let value = reader.skipValue(wireType: tag & 7) else { return nil }
            guard tag >> 3 == nodeField, tag & 7 == 2 else { continue }
            let node = UnsafeRawBufferPointer(rebasing: bytes[value])
            guard let kept = Self.droppingExtensions(node) else { return nil }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count - node.count + kept.count)
            out += bytes[..<fieldStart]
            WireReader.appendVarint(tag, to: &out)
            WireReader.appendVarint(UInt64(kept.count), to: &out)
            out += kept
            out += bytes[value.upperBound...]
            return out
        }
        return nil
    }

    /// A node's bytes without its extensions; nil if it has none.
    private static func droppingExtensions(_ node: UnsafeRawBufferPointer) -> [UInt8]? {
        var reader = WireReader(node)
        var kept: [UInt8] = []
        var dropped = false
        while !reader.atEnd {
            let start = reader.offset
            guard let tag = reader.varint(), reader.skipValue(wireType: tag & 7) != nil else { return nil }
            if tag >> 3 == extensionsField, tag & 7 == 2 {
                dropped = true
            } else {
                kept += node[start..<reader.offset]
            }
        }
        return dropped ? kept : nil
    }
}

/// Reads protobuf wire format: varints and whole field values.
private struct WireReader {
    let bytes: UnsafeRawBufferPointer
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    var atEnd: Bool { offset >= bytes.count }

    mutating func varint() -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while offset < bytes.count, shift < 64 {
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    /// Skips one field's value; the range of a length-delimited value's content (empty for others).
    mutating func skipValue(wireType: UInt64) -> Range<Int>? {
        switch wireType {
        case 0:
            return varint().map { _ in offset..<offset }
        case 1, 5:
            let size = wireType == 1 ? 8 : 4
            guard bytes.count - offset >= size else { return nil }
            offset += size
            return offset..<offset
        case 2:
            guard let length = varint(), length <= UInt64(bytes.count - offset) else { return nil }
            let start = offset
            offset += Int(length)
            return start..<offset
        default:
            // Groups (deprecated, never in these messages) and invalid wire types.
            return nil
        }
    }

    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var value = value
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        out.append(UInt8(value))
    }
}

/// grpc-swift's protobuf deserializer with the node's extensions dropped first.
struct NodeTrimmingDeserializer<Message: SwiftProtobuf.Message>: MessageDeserializer {
    let filter: NodeExtensionsFilter

    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> Message {
        let decoder = ProtobufDeserializer<Message>()
        guard let kept = serializedMessageBytes.withUnsafeBytes({ filter.filtered($0) }) else {
            return try decoder.deserialize(serializedMessageBytes)
        }
        return try decoder.deserialize(kept)
    }
}
