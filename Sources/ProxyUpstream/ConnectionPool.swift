import NIOCore

/// Which protocol a cluster speaks upstream (`HttpProtocolOptions` or the older cluster fields).
public enum UpstreamProtocol: Sendable, Equatable {
    case http1
    case http2
    /// `use_downstream_protocol_config`: HTTP/2 for HTTP/2 downstreams, HTTP/1.1 otherwise.
    case downstream
    /// `auto_config` over TLS: ALPN decides per host (h2 first; a host that answers `http/1.1`, or
    /// nothing, is remembered and spoken to over HTTP/1.1).
    case auto
}

/// One event loop's pool of a cluster, of either protocol. An enum rather than a protocol so
/// the request path calls the pool without an existential.
public enum ConnectionPool {
    case http1(HTTP1ConnectionPool)
    case http2(HTTP2ConnectionPool)

    public func acquire(host: Host, delegate: any UpstreamResponseDelegate,
                        completion: @escaping (Result<UpstreamConnection, any Error>, _ waited: Bool) -> Void) {
        switch self {
        case .http1(let pool): pool.acquire(host: host, delegate: delegate, completion: completion)
        case .http2(let pool): pool.acquire(host: host, delegate: delegate, completion: completion)
        }
    }

    /// After `takeIdle` found nothing: a new HTTP/1.1 connection or a wait for one; HTTP/2 as `acquire`.
    public func connectOrWait(host: Host, delegate: any UpstreamResponseDelegate,
                              completion: @escaping (Result<UpstreamConnection, any Error>, _ waited: Bool) -> Void) {
        switch self {
        case .http1(let pool): pool.connectOrWait(host: host, delegate: delegate, completion: completion)
        case .http2(let pool): pool.acquire(host: host, delegate: delegate, completion: completion)
        }
    }

    /// An idle HTTP/1.1 connection to `host`, now serving `delegate`, if the pool has one; nil otherwise
    /// (and always for HTTP/2), when `connectOrWait` is the way.
    public func takeIdle(host: Host, delegate: any UpstreamResponseDelegate) -> UpstreamConnection? {
        switch self {
        case .http1(let pool): pool.takeIdle(host: host, delegate: delegate)
        case .http2: nil
        }
    }

    /// The response is complete: the connection (or stream) can serve the next request.
    public func release(_ connection: UpstreamConnection) {
        switch self {
        case .http1(let pool): pool.release(connection)
        case .http2(let pool): pool.release(connection)
        }
    }

    /// The request was abandoned: close the connection (HTTP/1.1) or reset the stream (HTTP/2).
    public func discard(_ connection: UpstreamConnection) {
        switch self {
        case .http1(let pool): pool.discard(connection)
        case .http2(let pool): pool.discard(connection)
        }
    }
}

/// A TLS connection whose ALPN outcome does not fit the pool that opened it (an `auto_config` cluster
/// learning a host's protocol). The host now remembers the protocol; the request goes to the right pool.
public struct ALPNMismatch: Error, CustomStringConvertible {
    public var negotiated: String?

    public init(negotiated: String?) {
        self.negotiated = negotiated
    }

    public var description: String { "the upstream chose \(negotiated ?? "no protocol") by ALPN" }
}
