import Foundation
import NIOCore
import XDSAPI
import XDSResource

/// The HCM's `tracing` compiled into its provider's tracer.
public enum HTTPTracers {
    typealias Tracing = Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager.Tracing
    static let zipkinType = "envoy.config.trace.v3.ZipkinConfig"
    static let openTelemetryType = "envoy.config.trace.v3.OpenTelemetryConfig"

    /// What the tracers take from the node and the process.
    public struct Context: Sendable {
        public var nodeID: String
        /// The node's cluster: Zipkin's local service name.
        public var serviceCluster: String
        public var zone: String
        public var version: String
        /// Where reports are sent from; nil in validate mode (the config is checked, nothing reports).
        public var loop: (any EventLoop)?

        public init(nodeID: String, serviceCluster: String, zone: String, version: String, loop: (any EventLoop)?) {
            self.nodeID = nodeID
            self.serviceCluster = serviceCluster
            self.zone = zone
            self.version = version
            self.loop = loop
        }
    }

    /// nil when the HCM names no provider. Outbound listeners make client spans, others server
    /// spans, as Envoy's traffic direction decides.
    public static func compile(_ tracing: Envoy_Extensions_Filters_Network_HttpConnectionManager_V3_HttpConnectionManager.Tracing,
                               path: String, outbound: Bool, context: Context) throws -> (any HTTPTracer)? {
        guard tracing.hasProvider else { return nil }
        var sampling = TraceSampling()
        if tracing.hasRandomSampling { sampling.random = tracing.randomSampling.value }
        if tracing.hasClientSampling { sampling.client = tracing.clientSampling.value }
        if tracing.hasOverallSampling { sampling.overall = tracing.overallSampling.value }
        let configPath = path + ".provider.typed_config"
        switch tracing.provider.configType {
        case .typedConfig(let any)? where any.typeURL == TypeURL.prefix + zipkinType:
            return try ZipkinTracer.compile(try Envoy_Config_Trace_V3_ZipkinConfig(unpackingAny: any), path: configPath,
                                            sampling: sampling, outbound: outbound, context: context)
        case .typedConfig(let any)? where any.typeURL == TypeURL.prefix + openTelemetryType:
            return try OpenTelemetryTracer.compile(try Envoy_Config_Trace_V3_OpenTelemetryConfig(unpackingAny: any),
                                                   path: configPath, sampling: sampling, outbound: outbound, context: context)
        default:
            throw FieldError(path + ".provider", "Didn't find a registered implementation for '\(tracing.provider.name)' "
                + "with type URL: '\(tracing.provider.typedConfig.typeURL)'")
        }
    }
}

extension ZipkinTracer {
    static func compile(_ zipkin: Envoy_Config_Trace_V3_ZipkinConfig, path: String, sampling: TraceSampling,
                        outbound: Bool, context: HTTPTracers.Context) throws -> ZipkinTracer? {
        guard !zipkin.collectorCluster.isEmpty else {
            throw FieldError(path + ".collector_cluster", "a collector cluster is required")
        }
        guard !zipkin.collectorEndpoint.isEmpty else {
            throw FieldError(path + ".collector_endpoint", "a collector endpoint is required")
        }
        guard zipkin.collectorEndpointVersion == .httpJson else {
            throw FieldError(path + ".collector_endpoint_version", "only HTTP_JSON is supported")
        }
        guard let loop = context.loop else { return nil }
        let reporter = ZipkinReporter(
            collectorCluster: zipkin.collectorCluster, endpoint: zipkin.collectorEndpoint,
            hostname: zipkin.collectorHostname.isEmpty ? zipkin.collectorCluster : zipkin.collectorHostname, loop: loop)
        return ZipkinTracer(sampling: sampling, kind: outbound ? .client : .server,
                            sharedSpanContext: !zipkin.hasSharedSpanContext || zipkin.sharedSpanContext.value,
                            traceID128: zipkin.traceID128Bit, reporter: reporter, nodeID: context.nodeID,
                            serviceName: context.serviceCluster, zone: context.zone)
    }
}

extension OpenTelemetryTracer {
    static func compile(_ config: Envoy_Config_Trace_V3_OpenTelemetryConfig, path: String, sampling: TraceSampling,
                        outbound: Bool, context: HTTPTracers.Context) throws -> OpenTelemetryTracer? {
        let transport: OTLPExporter.Transport
        switch (config.hasGrpcService, config.hasHTTPService) {
        case (true, false):
            guard case .envoyGrpc(let envoyGrpc)? = config.grpcService.targetSpecifier, !envoyGrpc.clusterName.isEmpty else {
                throw FieldError(path + ".grpc_service", "only envoy_grpc with a cluster_name is supported")
            }
            transport = .grpc(cluster: envoyGrpc.clusterName)
        case (false, true):
            let uri = config.httpService.httpUri
            guard !uri.cluster.isEmpty, let parsed = URLComponents(string: uri.uri), let host = parsed.host else {
                throw FieldError(path + ".http_service.http_uri", "a uri and a cluster are required")
            }
            let authority = parsed.port.map { "\(host):\($0)" } ?? host
            transport = .http(cluster: uri.cluster, authority: authority, path: parsed.path.isEmpty ? "/" : parsed.path)
        case (true, true):
            throw FieldError(path, "only one of grpc_service and http_service may be set")
        case (false, false):
            throw FieldError(path, "grpc_service or http_service is required")
        }
        if config.hasSampler || !config.resourceDetectors.isEmpty {
            throw FieldError(path, "sampler and resource_detectors are not supported yet")
        }
        guard let loop = context.loop else { return nil }
        let exporter = OTLPExporter(transport: transport,
                                    serviceName: config.serviceName.isEmpty ? "unknown_service:envoy" : config.serviceName,
                                    version: context.version, loop: loop)
        return OpenTelemetryTracer(sampling: sampling, outbound: outbound, exporter: exporter, nodeID: context.nodeID,
                                   zone: context.zone)
    }
}
