import ProxyCore

/// `tcp.<stat_prefix>.*`, Envoy's TCP proxy stats.
public final class TCPProxyStats: Sendable {
    public let downstreamCxTotal, downstreamCxNoRoute, downstreamCxRxBytesTotal, downstreamCxTxBytesTotal,
        idleTimeout, downstreamFlowControlPausedReadingTotal, downstreamFlowControlResumedReadingTotal,
        maxDownstreamConnectionDuration, upstreamFlushTotal: Counter
    public let downstreamCxRxBytesBuffered, downstreamCxTxBytesBuffered, upstreamFlushActive: Gauge

    public init(statPrefix: String, store: StatsStore) {
        let scope = StatScope(store: store, prefix: "tcp.\(statPrefix).", extractedPrefix: "tcp.",
                              tags: [StatTags.Tag("envoy_tcp_prefix", statPrefix)])
        let counter = scope.counter, gauge = scope.gauge
        downstreamCxTotal = counter("downstream_cx_total")
        downstreamCxNoRoute = counter("downstream_cx_no_route")
        downstreamCxRxBytesTotal = counter("downstream_cx_rx_bytes_total")
        downstreamCxTxBytesTotal = counter("downstream_cx_tx_bytes_total")
        idleTimeout = counter("idle_timeout")
        downstreamFlowControlPausedReadingTotal = counter("downstream_flow_control_paused_reading_total")
        downstreamFlowControlResumedReadingTotal = counter("downstream_flow_control_resumed_reading_total")
        maxDownstreamConnectionDuration = counter("max_downstream_connection_duration")
        upstreamFlushTotal = counter("upstream_flush_total")
        downstreamCxRxBytesBuffered = gauge("downstream_cx_rx_bytes_buffered")
        downstreamCxTxBytesBuffered = gauge("downstream_cx_tx_bytes_buffered")
        upstreamFlushActive = gauge("upstream_flush_active")
    }
}
