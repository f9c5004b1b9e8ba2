/// `http2_protocol_options` of a connection manager or a cluster, with Envoy's defaults.
public struct HTTP2Options: Sendable, Equatable {
    public var maxConcurrentStreams = 2_147_483_647
    public var initialStreamWindowSize = 268_435_456
    public var initialConnectionWindowSize = 268_435_456
    /// Extended CONNECT (RFC 8441) for WebSocket over HTTP/2.
    public var allowConnect = false
    /// A malformed request resets only its stream; by default (as Envoy) it closes the connection.
    public var streamErrorOnInvalidHTTPMessage = false

    public init() {}
}
