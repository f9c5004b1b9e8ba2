import Foundation
import NIOHTTP1
import ProxyCore

/// What one finished request (or TCP connection) leaves for the access logs: Envoy's stream info,
/// gathered by the connection manager or TCP proxy when the stream ends.
public struct AccessLogEntry {
    public var startTime: Date
    /// The request as it arrived; `:method`, `:path`, `:authority` and `:scheme` are read from the
    /// fields below, other names from the headers.
    public var requestHeaders = HTTPHeaders()
    public var method = ""
    public var path = ""
    public var authority = ""
    public var scheme = "http"
    public var responseHeaders: HTTPHeaders?
    public var responseTrailers: HTTPHeaders?
    /// `HTTP/1.1`, `HTTP/2`; nil for TCP.
    public var protocolName: String?
    /// 0 when no response was sent.
    public var responseCode = 0
    public var responseCodeDetails: String?
    public var responseFlags: ResponseFlags = []
    public var bytesReceived: UInt64 = 0
    public var bytesSent: UInt64 = 0
    /// Milliseconds from the start: to the end of the stream, to the last request byte, to the first
    /// response byte from upstream.
    public var durationMs: Int64?
    public var requestDurationMs: Int64?
    public var responseDurationMs: Int64?
    public var upstreamHost: String?
    public var upstreamCluster: String?
    public var upstreamLocalAddress: String?
    public var upstreamTransportFailureReason: String?
    public var downstreamRemoteAddress: String?
    public var downstreamLocalAddress: String?
    public var routeName: String?
    public var connectionID: UInt64?
    /// The downstream connection's TLS, for the `%DOWNSTREAM_*_SAN%`-style operators.
    public var downstreamTLS: DownstreamTLSInfo?

    public init(startTime: Date) {
        self.startTime = startTime
    }

    /// A request header by Envoy's names, with the pseudo-headers answered from the request line.
    func requestHeader(_ name: String) -> String? {
        switch name {
        case ":method": return method
        case ":path": return path
        case ":authority": return authority.isEmpty ? requestHeaders.first(name: "host") : authority
        case ":scheme": return scheme
        default: return requestHeaders.first(name: name)
        }
    }

    func responseHeader(_ name: String) -> String? {
        if name == ":status" { return responseCode > 0 ? String(responseCode) : nil }
        return responseHeaders?.first(name: name)
    }

    /// `10.0.0.1:80` → `10.0.0.1`, `[::1]:80` → `::1`.
    public static func withoutPort(_ address: String) -> String {
        if address.hasPrefix("["), let close = address.firstIndex(of: "]") {
            return String(address[address.index(after: address.startIndex)..<close])
        }
        return address.lastIndex(of: ":").map { String(address[..<$0]) } ?? address
    }
}
