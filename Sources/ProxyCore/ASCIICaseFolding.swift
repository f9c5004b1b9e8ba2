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

extension String {
    /// Lower-cases ASCII letters. A name already in lower case comes back as it is, and one of up to
    /// 15 bytes (most header names) is built as a small string: no allocation either way.
    public func asciiLowercased() -> String {
        let result = utf8.withContiguousStorageIfAvailable { bytes -> String? in
            bytes.contains(where: Self.isUppercaseASCII) ? String(asciiLowercasing: bytes) : nil
        }
        switch result {
        case .some(nil): return self
        case .some(let lowered?): return lowered
        case nil: return String(decoding: utf8.map(Self.lowercasedASCII), as: UTF8.self)
        }
    }

    /// ASCII bytes (a header name) as a string with their letters in lower case.
    public init(asciiLowercasing bytes: UnsafeBufferPointer<UInt8>) {
        self.init(unsafeUninitializedCapacity: bytes.count) { out in
            for index in 0..<bytes.count { out[index] = Self.lowercasedASCII(bytes[index]) }
            return bytes.count
        }
    }
}
