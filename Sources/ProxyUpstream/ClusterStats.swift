import ProxyCore

/// A cluster's stats under Envoy's names (`cluster.<name>.<stat>`), resolved once when the cluster
/// is built so the request path only touches atomics.
public final class ClusterStats: Sendable {
    public let upstreamRqTotal, upstreamRqPendingTotal, upstreamRqPendingFailureEject, upstreamRqTimeout,
        upstreamRqPerTryTimeout, upstreamRqRetry, upstreamRqRetrySuccess, upstreamRqRetryLimitExceeded,
        upstreamRqRetryOverflow, upstreamRqRetryBackoffExponential, upstreamRqRetryBackoffRateLimited,
        upstreamRqCancelled, upstreamRqRxReset,
        upstreamRqTxReset, retryOrShadowAbandoned, upstreamCxTotal, upstreamCxConnectFail,
        upstreamCxConnectTimeout, upstreamCxHttp1Total, upstreamCxHttp2Total, upstreamCxMaxRequests, upstreamCxOverflow, upstreamRqActiveOverflow, lbHealthyPanic, upstreamCxDestroy, upstreamCxDestroyLocal,
        upstreamCxDestroyRemote, upstreamCxRxBytesTotal, upstreamCxTxBytesTotal, upstreamCxNoneHealthy,
        upstreamRqPendingOverflow, updateAttempt, updateSuccess, updateFailure, updateNoRebuild,
        membershipChange, assignmentTimeoutReceived, upstreamRqPerTryIdleTimeout, upstreamCxIdleTimeout,
        upstreamCxMaxDurationReached, lbZoneRoutingAllDirectly, lbZoneRoutingSampled, lbZoneRoutingCrossZone,
        lbZoneNoCapacityLeft, lbZoneClusterTooSmall, lbLocalClusterNotOK, lbRecalculateZoneStructures,
        upstreamCxProtocolError: Counter
    public let upstreamRqActive, upstreamRqPendingActive, upstreamCxActive, membershipHealthy, membershipTotal: Gauge
    /// `circuit_breakers.<priority>.*_open`, indexed by `ResourcePriority.rawValue`.
    public let circuitBreakers: [CircuitBreakerGauges]
    public let upstreamRqTime, externalUpstreamRqTime, upstreamCxConnectMs, upstreamCxLengthMs: Histogram
    /// `cluster.<c>.upstream_rq_<code>` and friends: every final response.
    public let responseCodes: StatusCodeCounters
    /// `cluster.<c>.external.upstream_rq_<code>`: final responses to requests from outside the mesh.
    public let externalResponseCodes: StatusCodeCounters
    /// `cluster.<c>.retry.upstream_rq_<code>`: responses that were retried.
    public let retryResponseCodes: StatusCodeCounters

    /// Envoy declares these for every cluster; meshproxy does not drive all of them yet, but a user's
    /// dashboard keyed on them must find them, at 0.
    static let declaredCounters = [
        "assignment_stale", "assignment_timeout_received", "assignment_use_cached", "bind_errors",
        "default.total_match_count", "lb_subsets_created", "lb_subsets_fallback", "lb_subsets_fallback_panic",
        "lb_subsets_removed", "lb_subsets_selected", "membership_change", "original_dst_host_invalid", "update_attempt", "update_empty", "update_failure",
        "update_no_rebuild", "update_success", "upstream_cx_close_notify", "upstream_cx_connect_attempts_exceeded",
        "upstream_cx_connect_with_0_rtt", "upstream_cx_destroy_local_with_active_rq",
        "upstream_cx_destroy_remote_with_active_rq", "upstream_cx_destroy_with_active_rq",
        "upstream_cx_http3_total", "upstream_cx_pool_overflow",
        "upstream_flow_control_backed_up_total", "upstream_flow_control_drained_total",
        "upstream_flow_control_paused_reading_total", "upstream_flow_control_resumed_reading_total",
        "upstream_http3_broken", "upstream_internal_redirect_failed_total", "upstream_internal_redirect_succeeded_total",
        "upstream_rq_0rtt", "upstream_rq_maintenance_mode", "upstream_rq_max_duration_reached",
        "upstream_rq_rx_reset_no_error",
        "http1.dropped_headers_with_underscores", "http1.metadata_not_supported_error",
        "http1.requests_rejected_with_underscores_in_headers", "http1.response_flood",
    ]
    static let declaredGauges = [
        "lb_subsets_active", "max_host_weight", "membership_degraded", "membership_excluded",
        "upstream_cx_rx_bytes_buffered", "upstream_cx_tx_bytes_buffered", "version", "warming_state",
        "circuit_breakers.default.cx_pool_open", "circuit_breakers.high.cx_pool_open",
    ]

    public init(clusterName: String, store: StatsStore) {
        let prefix = "cluster.\(clusterName)."
        let tags = [StatTags.Tag("envoy_cluster_name", clusterName)]
        let scope = StatScope(store: store, prefix: prefix, extractedPrefix: "cluster.", tags: tags)
        let counter = scope.counter, gauge = scope.gauge
        for stat in Self.declaredCounters { _ = counter(stat) }
        for stat in Self.declaredGauges { _ = gauge(stat) }
        upstreamRqTotal = counter("upstream_rq_total")
        upstreamRqPendingTotal = counter("upstream_rq_pending_total")
        upstreamRqPendingFailureEject = counter("upstream_rq_pending_failure_eject")
        upstreamRqPendingOverflow = counter("upstream_rq_pending_overflow")
        upstreamCxOverflow = counter("upstream_cx_overflow")
        upstreamRqActiveOverflow = counter("upstream_rq_active_overflow")
        lbHealthyPanic = counter("lb_healthy_panic")
        upstreamRqTimeout = counter("upstream_rq_timeout")
        upstreamRqPerTryTimeout = counter("upstream_rq_per_try_timeout")
        upstreamRqPerTryIdleTimeout = counter("upstream_rq_per_try_idle_timeout")
        upstreamCxIdleTimeout = counter("upstream_cx_idle_timeout")
        upstreamCxMaxDurationReached = counter("upstream_cx_max_duration_reached")
        lbZoneRoutingAllDirectly = counter("lb_zone_routing_all_directly")
        lbZoneRoutingSampled = counter("lb_zone_routing_sampled")
        lbZoneRoutingCrossZone = counter("lb_zone_routing_cross_zone")
        lbZoneNoCapacityLeft = counter("lb_zone_no_capacity_left")
        lbZoneClusterTooSmall = counter("lb_zone_cluster_too_small")
        lbLocalClusterNotOK = counter("lb_local_cluster_not_ok")
        lbRecalculateZoneStructures = counter("lb_recalculate_zone_structures")
        upstreamRqRetry = counter("upstream_rq_retry")
        upstreamRqRetrySuccess = counter("upstream_rq_retry_success")
        upstreamRqRetryLimitExceeded = counter("upstream_rq_retry_limit_exceeded")
        upstreamRqRetryOverflow = counter("upstream_rq_retry_overflow")
        upstreamRqRetryBackoffExponential = counter("upstream_rq_retry_backoff_exponential")
        upstreamRqRetryBackoffRateLimited = counter("upstream_rq_retry_backoff_ratelimited")
        upstreamRqCancelled = counter("upstream_rq_cancelled")
        upstreamRqRxReset = counter("upstream_rq_rx_reset")
        upstreamRqTxReset = counter("upstream_rq_tx_reset")
        retryOrShadowAbandoned = counter("retry_or_shadow_abandoned")
        upstreamCxTotal = counter("upstream_cx_total")
        upstreamCxConnectFail = counter("upstream_cx_connect_fail")
        upstreamCxConnectTimeout = counter("upstream_cx_connect_timeout")
        upstreamCxHttp1Total = counter("upstream_cx_http1_total")
        upstreamCxHttp2Total = counter("upstream_cx_http2_total")
        upstreamCxMaxRequests = counter("upstream_cx_max_requests")
        upstreamCxProtocolError = counter("upstream_cx_protocol_error")
        upstreamCxDestroy = counter("upstream_cx_destroy")
        upstreamCxDestroyLocal = counter("upstream_cx_destroy_local")
        upstreamCxDestroyRemote = counter("upstream_cx_destroy_remote")
        upstreamCxRxBytesTotal = counter("upstream_cx_rx_bytes_total")
        upstreamCxTxBytesTotal = counter("upstream_cx_tx_bytes_total")
        upstreamCxNoneHealthy = counter("upstream_cx_none_healthy")
        updateAttempt = counter("update_attempt")
        updateSuccess = counter("update_success")
        updateFailure = counter("update_failure")
        updateNoRebuild = counter("update_no_rebuild")
        membershipChange = counter("membership_change")
        assignmentTimeoutReceived = counter("assignment_timeout_received")
        upstreamRqActive = gauge("upstream_rq_active")
        upstreamRqPendingActive = gauge("upstream_rq_pending_active")
        upstreamCxActive = gauge("upstream_cx_active")
        membershipHealthy = gauge("membership_healthy")
        membershipTotal = gauge("membership_total")
        circuitBreakers = ResourcePriority.allCases.map { priority in
            let prefix = "circuit_breakers.\(priority.statName)."
            return CircuitBreakerGauges(cxOpen: gauge(prefix + "cx_open"), rqOpen: gauge(prefix + "rq_open"),
                                        rqPendingOpen: gauge(prefix + "rq_pending_open"),
                                        rqRetryOpen: gauge(prefix + "rq_retry_open"))
        }
        upstreamRqTime = scope.histogram("upstream_rq_time")
        externalUpstreamRqTime = scope.histogram("external.upstream_rq_time")
        upstreamCxConnectMs = scope.histogram("upstream_cx_connect_ms")
        upstreamCxLengthMs = scope.histogram("upstream_cx_length_ms")
        responseCodes = StatusCodeCounters(scope: prefix, stem: "upstream_rq", extractedScope: "cluster.", scopeTags: tags)
        externalResponseCodes = StatusCodeCounters(scope: prefix + "external.", stem: "upstream_rq",
                                                   extractedScope: "cluster.external.", scopeTags: tags)
        retryResponseCodes = StatusCodeCounters(scope: prefix + "retry.", stem: "upstream_rq",
                                                extractedScope: "cluster.retry.", scopeTags: tags)
        for family in [responseCodes, externalResponseCodes, retryResponseCodes] { store.register(family) }
    }
}

/// One priority's `circuit_breakers.<priority>.*_open` gauges: 1 while that resource is at its limit.
public struct CircuitBreakerGauges: Sendable {
    public let cxOpen, rqOpen, rqPendingOpen, rqRetryOpen: Gauge
}
