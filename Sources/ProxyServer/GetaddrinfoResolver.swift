import Dispatch
import ProxyUpstream
#if canImport(Glibc)
import Glibc
#endif

/// Resolves names with the system resolver (getaddrinfo) off the event loops, on a dispatch queue.
struct GetaddrinfoResolver: DNSResolver {
    struct Failure: Error, CustomStringConvertible {
        var name: String
        var code: Int32
        var description: String { "cannot resolve '\(name)': \(String(cString: gai_strerror(code)))" }
    }

    private static let queue = DispatchQueue(label: "meshproxy.dns", attributes: .concurrent)

    func resolve(_ name: String, family: DNSLookupFamily) async throws -> [String] {
        try await withCheckedThrowingContinuation { continuation in
            Self.queue.async {
                continuation.resume(with: Result { try Self.lookup(name, family: family) })
            }
        }
    }

    static func lookup(_ name: String, family: DNSLookupFamily) throws -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        switch family {
        case .v4Only: hints.ai_family = AF_INET
        case .v6Only: hints.ai_family = AF_INET6
        default: hints.ai_family = AF_UNSPEC
        }
        var result: UnsafeMutablePointer<addrinfo>?
        let code = getaddrinfo(name, nil, &hints, &result)
        guard code == 0 else { throw Failure(name: name, code: code) }
        defer { freeaddrinfo(result) }
        var addresses: [String] = []
        var cursor = result
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0,
                           NI_NUMERICHOST) == 0 {
                let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !addresses.contains(text) { addresses.append(text) }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }
}
