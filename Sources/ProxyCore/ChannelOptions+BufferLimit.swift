import NIOCore

extension ChannelOptions.Types.WriteBufferWaterMark {
    /// Envoy's `per_connection_buffer_limit_bytes` (1 MiB unless set) as a channel's write water marks:
    /// with more than `limit` bytes queued the channel turns unwritable and the proxy stops reading the
    /// connection that feeds it; below half of it, reading resumes.
    public init(perConnectionBufferLimit limit: Int) {
        let high = max(1, limit)
        self.init(low: high / 2, high: high)
    }

    /// Envoy's default `per_connection_buffer_limit_bytes`.
    public static let defaultBufferLimit = 1 << 20
}
