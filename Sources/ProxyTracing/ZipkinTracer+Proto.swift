import NIOCore
import XDSAPI
import XDSResource

extension ZipkinTracer {
    static let zipkinType = "envoy.config.trace.v3.ZipkinConfig"

    /// The HCM's `tracing`, with its provider; nil when the HCM has none. `kind` follows the
    /// listener's traffic direction (OUTBOUND: client spans; otherwise server spans, as Envoy).
    public static func compile(_ tracing: Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager.Tracing,
                               path: String, kind: SpanKind, loop: (any EventLoop)?, nodeID: String,
                               serviceName: String) throws -> ZipkinTracer? {
        guard tracing.hasProvider else { return nil }
        guard case .typedConfig(let any)? = tracing.provider.configType, any.typeURL == TypeURL.prefix + zipkinType else {
            throw FieldError(path + ".provider", "Didn't find a registered implementation for '\(tracing.provider.name)' "
                + "with type URL: '\(tracing.provider.typedConfig.typeURL)'")
        }
        let zipkin = try Envoy_Config_Trace_V3_ZipkinConfig(unpackingAny: any)
        let configPath = path + ".provider.typed_config"
        guard !zipkin.collectorCluster.isEmpty else {
            throw FieldError(configPath + ".collector_cluster", "a collector cluster is required")
        }
        guard !zipkin.collectorEndpoint.isEmpty else {
            throw FieldError(configPath + ".collector_endpoint", "a collector endpoint is required")
        }
        guard zipkin.collectorEndpointVersion == .httpJson else {
            throw FieldError(configPath + ".collector_endpoint_version", "only HTTP_JSON is supported")
        }
        // Validation only (no event loops): the config is checked, nothing reports.
        guard let loop else { return nil }
        var sampling = Sampling()
        if tracing.hasRandomSampling { sampling.random = tracing.randomSampling.value }
        if tracing.hasClientSampling { sampling.client = tracing.clientSampling.value }
        if tracing.hasOverallSampling { sampling.overall = tracing.overallSampling.value }
        let reporter = ZipkinReporter(
            collectorCluster: zipkin.collectorCluster, endpoint: zipkin.collectorEndpoint,
            hostname: zipkin.collectorHostname.isEmpty ? zipkin.collectorCluster : zipkin.collectorHostname, loop: loop)
        return ZipkinTracer(sampling: sampling, kind: kind,
                            sharedSpanContext: !zipkin.hasSharedSpanContext || zipkin.sharedSpanContext.value,
                            traceID128: zipkin.traceID128Bit, reporter: reporter, nodeID: nodeID,
                            serviceName: serviceName)
    }
}
