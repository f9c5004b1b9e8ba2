import SwiftProtobuf

extension Google_Protobuf_Duration {
    /// Whole milliseconds, rounding sub-millisecond remainders up so a tiny timeout never becomes 0.
    public var milliseconds: Int64 {
        seconds * 1000 + Int64((nanos + 999_999) / 1_000_000)
    }
}
