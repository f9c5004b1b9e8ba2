import NIOCore

/// The HTTP connection manager's timeouts, in Envoy's names and with Envoy's defaults; nil where a
/// timeout is disabled.
public struct ConnectionTimeouts: Sendable {
    /// `stream_idle_timeout` (5 minutes): a stream with no activity either way for this long ends
    /// (504 or 408 `stream timeout`, or a reset once its response has started). A route's
    /// `idle_timeout` replaces it for that route's requests.
    public var streamIdle: TimeAmount? = .minutes(5)
    /// `request_timeout`: the whole request must have arrived within this time of its start (408).
    public var request: TimeAmount?
    /// `request_headers_timeout`: a request's headers must have arrived within this time of its
    /// first byte (408 `request header timeout`). HTTP/1.1 connections only.
    public var requestHeaders: TimeAmount?
    /// `common_http_protocol_options.idle_timeout` (1 hour): a connection without a stream for this
    /// long is drained and closed.
    public var connectionIdle: TimeAmount? = .hours(1)
    /// `common_http_protocol_options.max_connection_duration`: a connection this old is drained.
    public var maxConnectionDuration: TimeAmount?
    /// `common_http_protocol_options.max_stream_duration`: a stream this old ends (504, or 408 before
    /// its request is complete; a reset once the response started). A route's `max_stream_duration` replaces it.
    public var maxStreamDuration: TimeAmount?
    /// `drain_timeout` (5 s): how long a drained connection (idle or too old) may finish its requests.
    public var drain: TimeAmount = .seconds(5)

    public init() {}

    /// A connection-wide timeout that ran out.
    enum ConnectionDue { case idle, maxDuration }

    /// The connection-wide deadlines (`idle_timeout` since `idleSince`, `max_connection_duration`
    /// since `openedAt`, unless `maxDurationDone`): what is due at `now`, else the next deadline.
    func connectionCheck(now: NIODeadline, openedAt: NIODeadline, idleSince: NIODeadline?,
                         maxDurationDone: Bool) -> (due: ConnectionDue?, next: NIODeadline?) {
        var next: NIODeadline?
        if !maxDurationDone, let limit = maxConnectionDuration {
            if now >= openedAt + limit { return (.maxDuration, nil) }
            next = openedAt + limit
        }
        if let since = idleSince, let limit = connectionIdle {
            if now >= since + limit { return (.idle, nil) }
            next = min(next ?? since + limit, since + limit)
        }
        return (nil, next)
    }

    /// How long a connection's timeout check may sleep without missing a deadline that activity
    /// could set after it was scheduled: the shortest configured timeout. Asked as each HTTP/2
    /// stream starts, so no array is made for it (that cost ~1.2k instructions).
    var checkInterval: TimeAmount? {
        var shortest = connectionCheckInterval
        Self.shorten(&shortest, to: streamIdle)
        Self.shorten(&shortest, to: request)
        Self.shorten(&shortest, to: requestHeaders)
        return shortest
    }

    /// The same for the connection-wide timeouts alone (an HTTP/2 connection's own check).
    var connectionCheckInterval: TimeAmount? {
        var shortest = connectionIdle
        Self.shorten(&shortest, to: maxConnectionDuration)
        return shortest
    }

    private static func shorten(_ shortest: inout TimeAmount?, to timeout: TimeAmount?) {
        guard let timeout else { return }
        if let current = shortest, current <= timeout { return }
        shortest = timeout
    }
}
