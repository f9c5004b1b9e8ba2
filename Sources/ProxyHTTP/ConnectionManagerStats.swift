import ProxyCore

/// `http.<stat_prefix>.*` stats of one HTTP connection manager, plus the per-listener copies of the
/// response classes Envoy keeps under `listener.<address>.http.<stat_prefix>.*`.
public final class ConnectionManagerStats: Sendable {
    public let downstreamRqTotal, downstreamRqHttp1Total, downstreamRqHttp2Total, downstreamCxTotal,
        downstreamCxHttp1Total, downstreamCxHttp2Total,
        downstreamCxDestroy, noRoute, noCluster, rqTotal, rqResetAfterDownstreamResponseStarted,
        downstreamRqRxReset, downstreamCxProtocolError, rqDirectResponse, rqRedirect,
        downstreamRqMaxDurationReached, downstreamCxUpgradesTotal, downstreamRqWsOnNonWsRoute,
        downstreamRqIdleTimeout, downstreamRqTimeout, downstreamRqHeaderTimeout, downstreamCxIdleTimeout,
        downstreamCxMaxDurationReached, downstreamRqTxReset: Counter
    /// The codecs' `http1.*` / `http2.*` counters for headers with underscores (root scope, as Envoy's).
    public let droppedUnderscoreHeaders, rejectedUnderscoreHeaders: (http1: Counter, http2: Counter)
    /// `http2.rx_messaging_error`: malformed HTTP/2 requests (root scope, as Envoy's).
    public let http2RxMessagingError: Counter
    public let downstreamRqActive, downstreamCxActive, downstreamCxHttp1Active, downstreamCxHttp2Active,
        downstreamCxUpgradesActive: Gauge
    public let downstreamRqTime, downstreamCxLengthMs: Histogram
    public let responseClasses: ResponseClassCounters
    public let listenerResponseClasses: ResponseClassCounters?

    public init(statPrefix: String, listenerScope: String?, store: StatsStore) {
        let prefix = "http.\(statPrefix)."
        let tags = [StatTags.Tag("envoy_http_conn_manager_prefix", statPrefix)]
        let scope = StatScope(store: store, prefix: prefix, extractedPrefix: "http.", tags: tags)
        let counter = scope.counter, gauge = scope.gauge
        downstreamRqTotal = counter("downstream_rq_total")
        downstreamRqHttp1Total = counter("downstream_rq_http1_total")
        downstreamRqHttp2Total = counter("downstream_rq_http2_total")
        downstreamCxHttp2Total = counter("downstream_cx_http2_total")
        downstreamCxHttp2Active = gauge("downstream_cx_http2_active")
        downstreamCxTotal = counter("downstream_cx_total")
        downstreamCxHttp1Total = counter("downstream_cx_http1_total")
        downstreamCxDestroy = counter("downstream_cx_destroy")
        downstreamRqRxReset = counter("downstream_rq_rx_reset")
        downstreamCxProtocolError = counter("downstream_cx_protocol_error")
        noRoute = counter("no_route")
        noCluster = counter("no_cluster")
        rqTotal = counter("rq_total")
        rqDirectResponse = counter("rq_direct_response")
        rqRedirect = counter("rq_redirect")
        downstreamRqMaxDurationReached = counter("downstream_rq_max_duration_reached")
        downstreamRqIdleTimeout = counter("downstream_rq_idle_timeout")
        downstreamRqTimeout = counter("downstream_rq_timeout")
        downstreamRqHeaderTimeout = counter("downstream_rq_header_timeout")
        downstreamCxIdleTimeout = counter("downstream_cx_idle_timeout")
        downstreamCxMaxDurationReached = counter("downstream_cx_max_duration_reached")
        downstreamRqTxReset = counter("downstream_rq_tx_reset")
        func codec(_ name: String) -> (http1: Counter, http2: Counter) {
            (store.counter("http1.\(name)", StatTags(extractedName: "http1.\(name)", tags: [])),
             store.counter("http2.\(name)", StatTags(extractedName: "http2.\(name)", tags: [])))
        }
        droppedUnderscoreHeaders = codec("dropped_headers_with_underscores")
        rejectedUnderscoreHeaders = codec("requests_rejected_with_underscores_in_headers")
        http2RxMessagingError = store.counter("http2.rx_messaging_error",
                                              StatTags(extractedName: "http2.rx_messaging_error", tags: []))
        downstreamCxUpgradesTotal = counter("downstream_cx_upgrades_total")
        downstreamCxUpgradesActive = gauge("downstream_cx_upgrades_active")
        downstreamRqWsOnNonWsRoute = counter("downstream_rq_ws_on_non_ws_route")
        rqResetAfterDownstreamResponseStarted = counter("rq_reset_after_downstream_response_started")
        downstreamRqActive = gauge("downstream_rq_active")
        downstreamCxActive = gauge("downstream_cx_active")
        downstreamCxHttp1Active = gauge("downstream_cx_http1_active")
        downstreamRqTime = scope.histogram("downstream_rq_time")
        downstreamCxLengthMs = scope.histogram("downstream_cx_length_ms")
        responseClasses = ResponseClassCounters(scope: prefix, extractedScope: "http.", tags: tags, store: store)
        listenerResponseClasses = listenerScope.map { scope in
            let listenerTags = tags + [StatTags.Tag("envoy_listener_address", scope)]
            return ResponseClassCounters(scope: "listener.\(scope).\(prefix)", extractedScope: "listener.http.",
                                         tags: listenerTags, store: store)
        }
    }

    /// Counts a finished request's response on both the HCM and its listener.
    public func recordResponse(status: Int) {
        responseClasses.record(status: status)
        listenerResponseClasses?.record(status: status)
    }
}

/// `downstream_rq_1xx` ... `downstream_rq_5xx` and `downstream_rq_completed`.
public final class ResponseClassCounters: Sendable {
    private let classes: [Counter]
    public let completed: Counter

    init(scope: String, extractedScope: String, tags: [StatTags.Tag], store: StatsStore) {
        classes = (1...5).map { codeClass in
            store.counter("\(scope)downstream_rq_\(codeClass)xx",
                          StatTags(extractedName: "\(extractedScope)downstream_rq_xx",
                                   tags: [StatTags.Tag("envoy_response_code_class", String(codeClass))] + tags))
        }
        completed = store.counter("\(scope)downstream_rq_completed",
                                  StatTags(extractedName: "\(extractedScope)downstream_rq_completed", tags: tags))
    }

    public func record(status: Int) {
        if (100...599).contains(status) { classes[status / 100 - 1].increment() }
        completed.increment()
    }
}
