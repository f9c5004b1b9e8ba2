import NIOEmbedded
import NIOHTTP1
import Testing
@testable import ProxyTracing

@Suite struct TraceContextTests {
    @Test func multiHeaderB3() throws {
        let context = try #require(TraceContext.extract(HTTPHeaders([
            ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"), ("X-B3-SpanId", "a2fb4a1d1a96d312"),
            ("X-B3-ParentSpanId", "0000000000000001"), ("X-B3-Sampled", "1"),
        ])))
        #expect(context.traceIDText == "463ac35c9f6413ad48485a3953bb6124")
        #expect(context.spanID == 0xa2fb_4a1d_1a96_d312 && context.parentID == 1 && context.sampled == true)
        #expect(context.b3Headers(sampled: true).map(\.0) == ["x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled"])
    }

    @Test func singleHeaderB3() throws {
        let context = try #require(TraceContext.extract(HTTPHeaders([("b3", "80f198ee56343ba8-e457b5a2e4d86bd1-0")])))
        #expect(context.traceIDText == "80f198ee56343ba8" && context.sampled == false && context.parentID == nil)
        let decisionOnly = try #require(TraceContext.extract(HTTPHeaders([("b3", "0")])))
        #expect(!decisionOnly.hasIDs && decisionOnly.sampled == false)
    }

    @Test func malformedIdsAreNoContext() {
        #expect(TraceContext.extract(HTTPHeaders([("x-b3-traceid", "xyz"), ("x-b3-spanid", "a2fb4a1d1a96d312")])) == nil)
        #expect(TraceContext.extract(HTTPHeaders()) == nil)
    }

    func tracer(shared: Bool = true, random: Double = 100) -> ZipkinTracer {
        var sampling = TraceSampling()
        sampling.random = random
        let reporter = ZipkinReporter(collectorCluster: "zipkin", endpoint: "/api/v2/spans", hostname: "zipkin",
                                      loop: EmbeddedEventLoop())
        return ZipkinTracer(sampling: sampling, kind: .server, sharedSpanContext: shared, traceID128: false,
                            reporter: reporter, nodeID: "n", serviceName: "s")
    }

    @Test func decisionsAndTheirRequestIDMarks() {
        let unsampled = tracer(random: 0)
        #expect(unsampled.sampling.decide(HTTPHeaders(), random: { 5 }) == .notTraced)
        #expect(unsampled.sampling.decide(HTTPHeaders([("x-envoy-force-trace", "1")]), random: { 5 }) == .forced)
        #expect(tracer().sampling.decide(HTTPHeaders(), random: { 5 }) == .sampled)
        let id = "11111111-2222-4333-8444-555555555555"
        #expect(TraceDecision.sampled.marked(requestID: id) == "11111111-2222-9333-8444-555555555555")
        #expect(TraceDecision.forced.marked(requestID: id) == "11111111-2222-a333-8444-555555555555")
        #expect(TraceDecision.notTraced.marked(requestID: id) == id)
        #expect(TraceDecision.sampled.marked(requestID: "not-a-uuid") == "not-a-uuid")
    }

    @Test func sharedOrChildSpans() {
        let incoming = HTTPHeaders([("x-b3-traceid", "0000000000000abc"), ("x-b3-spanid", "0000000000000def")])
        let shared = tracer().start(incoming, random: { 7 })
        #expect(shared.context.spanID == 0xdef && shared.context.parentID == nil && shared.shared && shared.sampled)
        let child = tracer(shared: false).start(incoming, random: { 7 })
        #expect(child.context.spanID == 7 && child.context.parentID == 0xdef && child.context.traceID == 0xabc)
        let fresh = tracer().start(HTTPHeaders(), random: { 42 })
        #expect(fresh.context.traceID == 42 && fresh.context.spanID == 42)
    }

    @Test func w3cTraceparentIsReadStrictlyAndWrittenInVersion00() throws {
        let context = try #require(TraceContext.extractW3C(HTTPHeaders([
            ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ])))
        #expect(context.traceIDHigh == 0x0af7_6519_16cd_43dd && context.traceID == 0x8448_eb21_1c80_319c)
        #expect(context.spanID == 0xb7ad_6b71_6920_3331 && context.sampled == true)
        #expect(context.traceparent(sampled: false) == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
        for bad in ["00-00000000000000000000000000000000-b7ad6b7169203331-01",  // zero trace id
                    "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  // zero span id
                    "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  // forbidden version
                    "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  // not the 55-character layout
                    "00-0af7651916cd43dd-b7ad6b7169203331-01", "garbage"] {
            #expect(TraceContext.extractW3C(HTTPHeaders([("traceparent", bad)])) == nil, "\(bad)")
        }
        // Another version in the same layout is read, as Envoy reads it; any flag with bit 0 samples.
        #expect(TraceContext.extractW3C(HTTPHeaders([
            ("traceparent", "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03"),
        ]))?.sampled == true)
    }

    @Test func openTelemetrySpansContinueTheCallersTraceAndFollowItsFlag() {
        let exporter = OTLPExporter(transport: .grpc(cluster: "otel"), serviceName: "s", version: "v",
                                    loop: EmbeddedEventLoop())
        let tracer = OpenTelemetryTracer(sampling: TraceSampling(), outbound: false, exporter: exporter, nodeID: "n")
        let child = tracer.start(HTTPHeaders([("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"),
                                              ("tracestate", "k=v")]), random: { 9 })
        #expect(child.context.traceIDHigh == 0x0af7_6519_16cd_43dd && child.context.parentID == 0xb7ad_6b71_6920_3331)
        #expect(child.context.spanID == 9 && !child.sampled && child.parentIsRemote)
        #expect(tracer.propagationHeaders(child).map { $0.1 } == ["00-0af7651916cd43dd8448eb211c80319c-0000000000000009-00", "k=v"])
        let fresh = tracer.start(HTTPHeaders(), random: { 3 })
        #expect(fresh.sampled && fresh.context.parentID == nil && fresh.context.traceIDHigh == 3)
        #expect(tracer.propagationHeaders(fresh).last! == ("tracestate", ""))
        #expect(tracer.replacesHeader("traceparent") && !tracer.replacesHeader("x-b3-traceid"))
    }

    @Test func otlpExportsAreGRPCFramedOrBareProtobuf() {
        let (grpcHead, grpcBody) = OTLPExporter.request([1, 2, 3], transport: .grpc(cluster: "otel"), userAgent: "ua")
        #expect(grpcHead.uri == OTLPExporter.grpcExportPath && grpcHead.headers.first(name: "content-type") == "application/grpc")
        #expect(Array(grpcBody.readableBytesView) == [0, 0, 0, 0, 3, 1, 2, 3])
        let (httpHead, httpBody) = OTLPExporter.request([1, 2, 3], transport: .http(cluster: "otel", authority: "collector:4318",
                                                                                      path: "/v1/traces"), userAgent: "ua")
        #expect(httpHead.uri == "/v1/traces" && httpHead.headers.first(name: "host") == "collector:4318")
        #expect(httpHead.headers.first(name: "content-type") == "application/x-protobuf")
        #expect(Array(httpBody.readableBytesView) == [1, 2, 3])
    }
}
