import Foundation
import SwiftProtobuf

/// What swift-protobuf's JSON decoder lets through and the schema-checked transcoder refuses: an enum number
/// with no case (proto3 keeps it as `UNRECOGNIZED`) and an Any of a type outside the registry. Every Any is
/// unpacked on the way, so a payload that does not decode fails now rather than when the proxy first reads it.
struct DecodedMessageCheck: Visitor {
    struct Refused: Error {}

    let registry: AnyTypeRegistry

    static func check(_ message: some Message, registry: AnyTypeRegistry) throws {
        var check = DecodedMessageCheck(registry: registry)
        try message.traverse(visitor: &check)
    }

    mutating func visitSingularEnumField<E: Enum>(value: E, fieldNumber: Int) throws {
        guard Self.isDefined(value) else { throw Refused() }
    }

    mutating func visitSingularMessageField<M: Message>(value: M, fieldNumber: Int) throws {
        if let any = value as? Google_Protobuf_Any {
            guard let type = registry.type(forMessageName: TypeURL.messageName(of: any.typeURL)) else { throw Refused() }
            try type.init(unpackingAny: any).traverse(visitor: &self)
        } else {
            try value.traverse(visitor: &self)
        }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufEnumMap<KeyType, ValueType>.Type,
        value: _ProtobufEnumMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws where ValueType.RawValue == Int {
        for element in value.values where !Self.isDefined(element) { throw Refused() }
    }

    mutating func visitMapField<KeyType, ValueType>(
        fieldType: _ProtobufMessageMap<KeyType, ValueType>.Type,
        value: _ProtobufMessageMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {
        for element in value.values { try visitSingularMessageField(value: element, fieldNumber: fieldNumber) }
    }

    // Scalars need no check.
    mutating func visitMapField<KeyType, ValueType: MapValueType>(
        fieldType: _ProtobufMap<KeyType, ValueType>.Type,
        value: _ProtobufMap<KeyType, ValueType>.BaseType,
        fieldNumber: Int
    ) throws {}
    mutating func visitSingularDoubleField(value: Double, fieldNumber: Int) throws {}
    mutating func visitSingularInt64Field(value: Int64, fieldNumber: Int) throws {}
    mutating func visitSingularUInt64Field(value: UInt64, fieldNumber: Int) throws {}
    mutating func visitSingularBoolField(value: Bool, fieldNumber: Int) throws {}
    mutating func visitSingularStringField(value: String, fieldNumber: Int) throws {}
    mutating func visitSingularBytesField(value: Data, fieldNumber: Int) throws {}
    mutating func visitUnknown(bytes: Data) throws {}

    /// Generated enums list their cases in `allCases`; `UNRECOGNIZED` is not among them.
    static func isDefined<E: Enum>(_ value: E) -> Bool {
        guard let iterable = E.self as? any CaseIterable.Type else { return true }
        return hasCase(iterable, value)
    }

    private static func hasCase<C: CaseIterable, E: Enum>(_ type: C.Type, _ value: E) -> Bool {
        type.allCases.contains { ($0 as? E) == value }
    }
}
