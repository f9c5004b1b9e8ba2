import NIOHTTP1
import ProxyCore

extension HTTPHeaders {
    /// The same headers with names in lower case, as the proxy keeps them. Heads from the HTTP/1
    /// parsers already have them so; those from NIO's codecs (HTTP/2, where they are lower case on
    /// the wire too) are only looked over.
    public func withLowercasedNames() -> HTTPHeaders {
        guard contains(where: { $0.name.utf8.contains(where: String.isUppercaseASCII) }) else { return self }
        return HTTPHeaders(map { ($0.name.asciiLowercased(), $0.value) })
    }
}
