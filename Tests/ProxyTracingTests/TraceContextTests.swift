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
        var sampling = ZipkinTracer.Sampling()
        sampling.random = random
        let reporter = ZipkinReporter(collectorCluster: "zipkin", endpoint: "/api/v2/spans", hostname: "zipkin",
                                      loop: EmbeddedEventLoop())
        return ZipkinTracer(sampling: sampling, kind: .server, sharedSpanContext: shared, traceID128: false,
                            reporter: reporter, nodeID: "n", serviceName: "s")
    }

    @Test func decisionsAndTheirRequestIDMarks() {
        let unsampled = tracer(random: 0)
        #expect(unsampled.decide(HTTPHeaders(), random: { 5 }) == .notTraced)
        #expect(unsampled.decide(HTTPHeaders([("x-envoy-force-trace", "1")]), random: { 5 }) == .forced)
        #expect(tracer().decide(HTTPHeaders(), random: { 5 }) == .sampled)
        let id = "11111111-2222-4333-8444-555555555555"
        #expect(ZipkinTracer.markedRequestID(id, decision: .sampled) == "11111111-2222-9333-8444-555555555555")
        #expect(ZipkinTracer.markedRequestID(id, decision: .forced) == "11111111-2222-a333-8444-555555555555")
        #expect(ZipkinTracer.markedRequestID(id, decision: .notTraced) == id)
        #expect(ZipkinTracer.markedRequestID("not-a-uuid", decision: .sampled) == "not-a-uuid")
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
}
