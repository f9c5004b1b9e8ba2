/// What tls_inspector reads from a TLS ClientHello: the SNI host name and the offered ALPN
/// protocols. Parsing is bounded by the record and never trusts a length it has not checked.
public struct ClientHello: Sendable, Equatable {
    public var serverName: String?
    public var alpn: [String] = []

    public init(serverName: String? = nil, alpn: [String] = []) {
        self.serverName = serverName
        self.alpn = alpn
    }

    public enum ParseResult: Sendable, Equatable {
        case needMoreData
        case notTLS
        case hello(ClientHello)
    }

    /// Envoy's tls_inspector reads at most this many bytes (its default max_client_hello_size).
    public static let maxSize = 16_384

    /// Parses the first handshake record of a connection.
    public static func parse(_ bytes: [UInt8]) -> ParseResult {
        guard bytes.count >= 5 else { return bytes.first.map { $0 == 0x16 ? .needMoreData : .notTLS } ?? .needMoreData }
        guard bytes[0] == 0x16, bytes[1] == 0x03 else { return .notTLS }
        let recordLength = Int(bytes[3]) << 8 | Int(bytes[4])
        guard bytes.count >= 5 + min(recordLength, 4) else { return .needMoreData }
        // Handshake header: type 1 (ClientHello), 3-byte length.
        guard bytes[5] == 0x01 else { return .notTLS }
        let helloLength = Int(bytes[6]) << 16 | Int(bytes[7]) << 8 | Int(bytes[8])
        guard helloLength + 9 <= maxSize else { return .notTLS }
        // A ClientHello spread over several records is rare; the name is then left unknown.
        guard helloLength + 4 <= recordLength else { return .hello(ClientHello()) }
        guard bytes.count >= 9 + helloLength else { return .needMoreData }
        var reader = Reader(bytes: bytes, position: 9, end: 9 + helloLength)
        var hello = ClientHello()
        guard reader.skip(2 + 32),                       // version, random
              reader.skipVector(lengthBytes: 1),         // session id
              reader.skipVector(lengthBytes: 2),         // cipher suites
              reader.skipVector(lengthBytes: 1)          // compression methods
        else { return .notTLS }
        guard reader.remaining > 0 else { return .hello(hello) }
        guard let extensionsLength = reader.uint(2), extensionsLength <= reader.remaining else { return .notTLS }
        var extensions = Reader(bytes: bytes, position: reader.position, end: reader.position + extensionsLength)
        while extensions.remaining >= 4 {
            guard let type = extensions.uint(2), let length = extensions.uint(2), length <= extensions.remaining else {
                return .notTLS
            }
            var body = Reader(bytes: bytes, position: extensions.position, end: extensions.position + length)
            switch type {
            case 0x0000: hello.serverName = body.serverName()
            case 0x0010: hello.alpn = body.protocolNames()
            default: break
            }
            _ = extensions.skip(length)
        }
        return .hello(hello)
    }

    private struct Reader {
        let bytes: [UInt8]
        var position: Int
        let end: Int

        var remaining: Int { end - position }

        mutating func skip(_ count: Int) -> Bool {
            guard count <= remaining else { return false }
            position += count
            return true
        }

        mutating func uint(_ width: Int) -> Int? {
            guard width <= remaining else { return nil }
            var value = 0
            for _ in 0..<width {
                value = value << 8 | Int(bytes[position])
                position += 1
            }
            return value
        }

        mutating func skipVector(lengthBytes: Int) -> Bool {
            guard let length = uint(lengthBytes) else { return false }
            return skip(length)
        }

        mutating func string(length: Int) -> String? {
            guard length <= remaining else { return nil }
            defer { position += length }
            return String(decoding: bytes[position..<position + length], as: UTF8.self)
        }

        /// server_name extension: a list of (type, name); type 0 is a host name.
        mutating func serverName() -> String? {
            guard let listLength = uint(2), listLength <= remaining else { return nil }
            let listEnd = position + listLength
            while position + 3 <= listEnd {
                guard let type = uint(1), let length = uint(2), position + length <= listEnd else { return nil }
                if type == 0 { return string(length: length)?.lowercased() }
                position += length
            }
            return nil
        }

        /// application_layer_protocol_negotiation extension: a list of length-prefixed names.
        mutating func protocolNames() -> [String] {
            guard let listLength = uint(2), listLength <= remaining else { return [] }
            let listEnd = position + listLength
            var names: [String] = []
            while position < listEnd {
                guard let length = uint(1), position + length <= listEnd, let name = string(length: length) else { break }
                names.append(name)
            }
            return names
        }
    }
}
