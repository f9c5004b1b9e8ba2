/// What an admin endpoint answers.
public struct AdminResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: String

    public init(status: Int = 200, contentType: String = "text/plain; charset=UTF-8", body: String) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    static func json(_ body: String) -> AdminResponse {
        AdminResponse(contentType: "application/json", body: body)
    }
}

/// An admin request: method, path and decoded query parameters.
public struct AdminRequest: Sendable {
    public var method: String
    public var path: String
    public var query: [(String, String)]

    public init(method: String, uri: String) {
        self.method = method
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        path = String(parts[0])
        query = []
        if parts.count > 1 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = Self.percentDecode(String(kv[0]))
                let value = kv.count > 1 ? Self.percentDecode(String(kv[1])) : ""
                query.append((key, value))
            }
        }
    }

    public func parameter(_ name: String) -> String? { query.first { $0.0 == name }?.1 }
    public func has(_ name: String) -> Bool { query.contains { $0.0 == name } }

    static func percentDecode(_ text: String) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let high = iterator.next(), let low = iterator.next(),
               let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else if byte == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
