/// ASCII case folding for header names, over UTF-8 bytes in place: String's own comparisons and
/// UTF-8 iterator cost ~25 instructions a byte, and header names are ASCII.
extension String {
    @inlinable
    public static func isUppercaseASCII(_ byte: UInt8) -> Bool {
        byte &- UInt8(ascii: "A") < 26
    }

    @inlinable
    public static func lowercasedASCII(_ byte: UInt8) -> UInt8 {
        isUppercaseASCII(byte) ? byte | 0x20 : byte
    }

    /// Compares with a lowercase ASCII literal, ignoring the case of this string's ASCII letters.
    @inlinable
    public func isASCIICaseInsensitiveEqual(to lowercase: StaticString) -> Bool {
        guard utf8.count == lowercase.utf8CodeUnitCount else { return false }
        if let equal = utf8.withContiguousStorageIfAvailable({ Self.isASCIICaseInsensitiveEqual($0, to: lowercase) }) {
            return equal
        }
        return Self.isASCIICaseInsensitiveEqual(Array(utf8), to: lowercase)
    }

    /// The same over bytes.
    @inlinable
    public static func isASCIICaseInsensitiveEqual(_ bytes: some Collection<UInt8>, to lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        let expected = lowercase.utf8Start
        var index = 0
        for byte in bytes {
            if lowercasedASCII(byte) != expected[index] { return false }
            index += 1
        }
        return true
    }
}
