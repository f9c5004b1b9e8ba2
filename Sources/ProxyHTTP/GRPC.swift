import NIOHTTP1

/// What the router needs to know about gRPC: which requests are gRPC, how a local reply's HTTP status
/// reads as a gRPC status, and the `grpc-timeout` header.
enum GRPC {
    /// `content-type: application/grpc`, `application/grpc+proto`, `application/grpc;...`.
    static func isGRPC(_ headers: HTTPHeaders) -> Bool {
        guard let type = headers.first(name: "content-type") else { return false }
        let lead = "application/grpc"
        guard type.utf8.count >= lead.utf8.count,
              type.utf8.prefix(lead.utf8.count).elementsEqual(lead.utf8) else { return false }
        guard let next = type.utf8.dropFirst(lead.utf8.count).first else { return true }
        return next == UInt8(ascii: "+") || next == UInt8(ascii: ";")
    }

    /// The gRPC status a client should see for a proxy-made HTTP status (gRPC's published mapping,
    /// which Envoy follows).
    static func status(forHTTP status: Int) -> Int {
        switch status {
        case 400: 13  // INTERNAL
        case 401: 16  // UNAUTHENTICATED
        case 403: 7  // PERMISSION_DENIED
        case 404: 12  // UNIMPLEMENTED
        case 429, 502, 503, 504: 14  // UNAVAILABLE
        default: 2  // UNKNOWN
        }
    }

    /// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%` itself.
    static func percentEncoded(_ message: String) -> String {
        guard message.utf8.contains(where: { $0 < 0x20 || $0 > 0x7E || $0 == UInt8(ascii: "%") }) else {
            return message
        }
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        for byte in message.utf8 {
            if byte < 0x20 || byte > 0x7E || byte == UInt8(ascii: "%") {
                out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A `grpc-timeout` value (`<digits><unit>`, unit one of H M S m u n) in milliseconds, rounded up;
    /// nil when malformed.
    static func timeoutMilliseconds(_ value: String) -> Int64? {
        let bytes = Array(value.utf8)
        guard bytes.count >= 2, bytes.count <= 9, let unit = bytes.last else { return nil }
        var amount: Int64 = 0
        for byte in bytes.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        switch unit {
        case UInt8(ascii: "H"): return amount * 3_600_000
        case UInt8(ascii: "M"): return amount * 60_000
        case UInt8(ascii: "S"): return amount * 1000
        case UInt8(ascii: "m"): return amount
        case UInt8(ascii: "u"): return (amount + 999) / 1000
        case UInt8(ascii: "n"): return (amount + 999_999) / 1_000_000
        default: return nil
        }
    }
}
