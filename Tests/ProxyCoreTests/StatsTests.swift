import Testing
@testable import ProxyCore

@Suite struct StatsTests {
    @Test func storeReturnsTheSameStatForAName() {
        let store = StatsStore()
        let a = store.counter("cluster.c.upstream_rq_total", StatTags(extractedName: "cluster.upstream_rq_total"))
        let b = store.counter("cluster.c.upstream_rq_total", StatTags(extractedName: "cluster.upstream_rq_total"))
        a.increment()
        #expect(b.value == 1)
    }

    @Test func statusCodeFamiliesListOnlyUsedCodes() {
        let store = StatsStore()
        let family = StatusCodeCounters(scope: "cluster.c.", stem: "upstream_rq", extractedScope: "cluster.",
                                        scopeTags: [StatTags.Tag("envoy_cluster_name", "c")])
        store.register(family)
        family.record(status: 503)
        family.record(status: 503)
        family.record(status: 200)
        let names = store.snapshot().counters.map { "\($0.name)=\($0.value)" }
        #expect(names == ["cluster.c.upstream_rq_200=1", "cluster.c.upstream_rq_2xx=1", "cluster.c.upstream_rq_503=2",
                          "cluster.c.upstream_rq_5xx=2", "cluster.c.upstream_rq_completed=3"])
        let code = store.snapshot().counters.first { $0.name == "cluster.c.upstream_rq_503" }!
        #expect(code.tags.extractedName == "cluster.upstream_rq")
        #expect(code.tags.tags.first == StatTags.Tag("envoy_response_code", "503"))
        store.resetCounters()
        #expect(store.snapshot().counters.allSatisfy { $0.value == 0 })
        #expect(store.snapshot().counters.count == 5, "used counters stay listed after a reset, as in Envoy")
    }

    @Test func histogramQuantilesInterpolateWithinBuckets() {
        let histogram = Histogram(name: "h", tags: StatTags(extractedName: "h"))
        #expect(histogram.snapshot().count == 0)
        for _ in 0..<100 { histogram.record(milliseconds: 3) }
        let data = histogram.snapshot()
        #expect(data.count == 100)
        #expect(data.cumulativeCounts[1] == 0 && data.cumulativeCounts[2] == 100)
        #expect(data.quantile(0.5) > 1 && data.quantile(0.5) <= 5)
        #expect(data.sum == 300)
    }

    @Test func requestIDsAreVersion4UUIDs() {
        var generator = RequestIDGenerator()
        var seen = Set<String>()
        for _ in 0..<1000 {
            let id = generator.next()
            #expect(id.count == 36)
            let scalars = Array(id)
            #expect(scalars[8] == "-" && scalars[13] == "-" && scalars[18] == "-" && scalars[23] == "-")
            #expect(scalars[14] == "4")
            #expect("89ab".contains(scalars[19]))
            seen.insert(id)
        }
        #expect(seen.count == 1000)
        var other = RequestIDGenerator()
        #expect(other.next() != generator.next(), "generators are seeded apart")
        #expect(RequestIDGenerator.uuidText(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210)
                == "01234567-89ab-cdef-fedc-ba9876543210")
        #expect(RequestIDGenerator.uuidText(high: 0, low: .max) == "00000000-0000-0000-ffff-ffffffffffff")
    }

    @Test func dateHeaderIsIMFFixdate() {
        var cache = HTTPDateCache()
        let text = cache.current()
        #expect(text.count == 29)
        #expect(text.hasSuffix(" GMT"))
        #expect(cache.current() == text || cache.current().count == 29)
    }

    @Test func snapshotHolderSwapsAtomically() {
        final class Config: Sendable { let version: Int; init(_ v: Int) { version = v } }
        let holder = SnapshotHolder(Config(1))
        let old = holder.load()
        holder.store(Config(2))
        #expect(old.version == 1 && holder.load().version == 2)
    }

    @Test func responseFlagsPrintLikeEnvoy() {
        #expect(ResponseFlags().description == "-")
        #expect(ResponseFlags([.upstreamConnectionFailure, .upstreamRetryLimitExceeded]).description == "UF,URX")
    }
}
