import NIOHPACK
import Testing
@testable import ProxyHTTP

@Suite struct HTTP2ResponseHeaderIndexingTests {
    @Test func valuesThatChangeEveryResponseAreNotIndexed() {
        var headers = HPACKHeaders([(":status", "200"), ("server", "envoy"), ("date", "Mon, 07 Dec 2026 05:20:00 GMT"),
                                    ("content-type", "text/plain"), ("x-envoy-upstream-service-time", "1")])
        headers.add(name: "x-request-id", value: "0123", indexing: .neverIndexed)
        let shaped = HTTP2ResponseHeaderIndexing.volatileValuesUnindexed(headers)
        #expect(shaped.map(\.name) == headers.map(\.name))
        #expect(shaped.map(\.value) == headers.map(\.value))
        #expect(shaped.map(\.indexable) == [.indexable, .indexable, .nonIndexable, .indexable, .nonIndexable, .neverIndexed])
    }

    @Test func headersWithNothingVolatileAreLeftAsTheyAre() {
        let headers = HPACKHeaders([("grpc-status", "0"), ("grpc-message", "ok")])
        #expect(HTTP2ResponseHeaderIndexing.volatileValuesUnindexed(headers).map(\.indexable) == [.indexable, .indexable])
    }
}
