import Synchronization

/// Makes `x-request-id` values (random UUIDv4 text) from a userspace generator, one per connection:
/// Foundation's UUID() costs three system calls per request on Linux (PERFORMANCE.md).
public struct RequestIDGenerator: Sendable {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    private static let seedBase = UInt64.random(in: .min ... .max)
    private static let seedCounter = Atomic<UInt64>(0)

    public init() {
        // splitmix64 over a process-wide counter: distinct, well-mixed seeds without a system call.
        var x = Self.seedBase &+ Self.seedCounter.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        func next() -> UInt64 {
            x = x &+ 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (next(), next(), next(), next())
    }

    /// xoshiro256**.
    private mutating func nextWord() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = (state.3 << 45) | (state.3 >> 19)
        return result
    }

    /// A random number from the same generator (weighted cluster picks).
    public mutating func nextRandom() -> UInt64 { nextWord() }

    /// A random version-4 UUID in its 36-character lower-case form.
    public mutating func next() -> String {
        var high = nextWord()
        var low = nextWord()
        high = (high & ~0xF000) | 0x4000  // version 4
        low = (low & ~(0xC << 60)) | (0x8 << 60)  // RFC 4122 variant
        return Self.uuidText(high: high, low: low)
    }

    /// The two words as `8-4-4-4-12` lower-case hex digits, most significant first.
    static func uuidText(high: UInt64, low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 36) { buffer in
            let out = UnsafeMutableRawPointer(buffer.baseAddress!)
            let second = hexDigits(UInt32(truncatingIfNeeded: high))
            let third = hexDigits(UInt32(truncatingIfNeeded: low >> 32))
            out.storeBytes(of: hexDigits(UInt32(truncatingIfNeeded: high >> 32)), toByteOffset: 0, as: UInt64.self)
            out.storeBytes(of: UInt32(truncatingIfNeeded: second), toByteOffset: 9, as: UInt32.self)
            out.storeBytes(of: UInt32(truncatingIfNeeded: second >> 32), toByteOffset: 14, as: UInt32.self)
            out.storeBytes(of: UInt32(truncatingIfNeeded: third), toByteOffset: 19, as: UInt32.self)
            out.storeBytes(of: UInt32(truncatingIfNeeded: third >> 32), toByteOffset: 24, as: UInt32.self)
            out.storeBytes(of: hexDigits(UInt32(truncatingIfNeeded: low)), toByteOffset: 28, as: UInt64.self)
            buffer[8] = UInt8(ascii: "-")
            buffer[13] = UInt8(ascii: "-")
            buffer[18] = UInt8(ascii: "-")
            buffer[23] = UInt8(ascii: "-")
            return 36
        }
    }

    /// The eight hex digits of `value` as eight bytes, the most significant digit first in memory: the
    /// nibbles spread one to a byte, then each turned into its digit without a branch.
    static func hexDigits(_ value: UInt32) -> UInt64 {
        var x = UInt64(value)
        x = ((x & 0xFFFF_0000) << 16) | (x & 0x0000_FFFF)
        x = ((x & 0x0000_FF00_0000_FF00) << 8) | (x & 0x0000_00FF_0000_00FF)
        x = ((x & 0x00F0_00F0_00F0_00F0) << 4) | (x & 0x000F_000F_000F_000F)
        let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        x = x &+ 0x3030_3030_3030_3030 &+ letters &* 39
        return UInt64(bigEndian: x)
    }
}
