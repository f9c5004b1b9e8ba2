/// RFC 9110's rules for what may be sent as a field name (a token) and a field value (no control
/// characters but horizontal tab): an invalid one would let a header split the message. The proxy's
/// encoder checks what it sends; the upstream response parser what it reads.
public enum HTTP1HeaderValidation {
    @inlinable public static func isValidName(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = UnsafeRawPointer(bytes.baseAddress), !bytes.isEmpty else { return false }
        // Eight bytes at a time while they are what names nearly always are (lower-case letters,
        // digits, '-'); the last word overlaps the one before it rather than leaving a tail. Any
        // other name (upper case, other token characters) byte by byte.
        if bytes.count >= 8 {
            var index = 0
            while index + 8 < bytes.count, isLowercaseNameWord(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
            }
            if index + 8 >= bytes.count,
               isLowercaseNameWord(base.loadUnaligned(fromByteOffset: bytes.count - 8, as: UInt64.self)) {
                return true
            }
        }
        return bytes.allSatisfy(isTokenByte)
    }

    /// Whether all eight bytes are lower-case letters, digits or '-'. With the high bits clear, adding
    /// `0x80 - c` to every byte sets a byte's high bit exactly when the byte is at least `c` (no byte
    /// carries into the next), so each range is two such tests.
    @inlinable @inline(__always) public static func isLowercaseNameWord(_ word: UInt64) -> Bool {
        let high: UInt64 = 0x8080_8080_8080_8080
        let ones: UInt64 = 0x0101_0101_0101_0101
        guard word & high == 0 else { return false }
        @inline(__always) func atLeast(_ byte: UInt64) -> UInt64 { (word &+ ones &* (0x80 - byte)) & high }
        let letter = atLeast(0x61) & ~atLeast(0x7B)
        let digit = atLeast(0x30) & ~atLeast(0x3A)
        let dash = atLeast(0x2D) & ~atLeast(0x2E)
        return letter | digit | dash == high
    }

    @inlinable public static func isValidValue(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        if let base = UnsafeRawPointer(bytes.baseAddress) {
            // Eight bytes at a time while they are printable ASCII, as nearly every value is; the rest
            // (and a word with a tab or a byte over 0x7F) byte by byte.
            while index + 8 <= bytes.count, isPrintableASCII(base.loadUnaligned(fromByteOffset: index, as: UInt64.self)) {
                index += 8
            }
        }
        while index < bytes.count {
            guard isValueByte(bytes[index]) else { return false }
            index += 1
        }
        return true
    }

    /// Whether all eight bytes are in 0x20...0x7E. With the high bits clear, `(x - 0x20…) & ~x & 0x80…` is
    /// non-zero exactly when some byte is below 0x20, and the same test on `x ^ 0x7F…` finds a 0x7F.
    @inlinable public static func isPrintableASCII(_ word: UInt64) -> Bool {
        let high: UInt64 = 0x8080_8080_8080_8080
        let ones: UInt64 = 0x0101_0101_0101_0101
        let del = word ^ (ones &* 0x7F)
        return word & high == 0
            && (word &- ones &* 0x20) & ~word & high == 0
            && (del &- ones) & ~del & high == 0
    }

    @inlinable static func isValueByte(_ byte: UInt8) -> Bool {
        byte >= 0x20 ? byte != 0x7F : byte == UInt8(ascii: "\t")
    }

    /// RFC 9110's tchar as bits: ! # $ % & ' * + - . 0-9 in the first 64 code points, A-Z ^ _ ` a-z | ~
    /// in the next 64.
    @usableFromInline static let tokenLow: UInt64 = 0x03FF_6CFA_0000_0000
    @usableFromInline static let tokenHigh: UInt64 = 0x57FF_FFFF_C7FF_FFFE

    @inlinable public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0..<64: (tokenLow >> UInt64(byte)) & 1 == 1
        case 64..<128: (tokenHigh >> UInt64(byte - 64)) & 1 == 1
        default: false
        }
    }
}
