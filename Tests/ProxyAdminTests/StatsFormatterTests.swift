import Testing
import ProxyCore
@testable import ProxyAdmin

@Suite struct StatsFormatterTests {
    func store() -> StatsStore {
        let store = StatsStore()
        let tags = [StatTags.Tag("envoy_cluster_name", "web")]
        store.counter("cluster.web.upstream_rq_total", StatTags(extractedName: "cluster.upstream_rq_total", tags: tags)).add(4)
        store.gauge("cluster.web.upstream_cx_active", StatTags(extractedName: "cluster.upstream_cx_active", tags: tags)).set(2)
        store.counter("cluster.web.bind_errors", StatTags(extractedName: "cluster.bind_errors", tags: tags))
        store.histogram("cluster.web.upstream_rq_time", StatTags(extractedName: "cluster.upstream_rq_time", tags: tags))
            .record(milliseconds: 1.05)
        store.histogram("http.admin.downstream_rq_time", StatTags(extractedName: "http.downstream_rq_time"))
        return store
    }

    @Test func textSortsCountersAndGaugesThenHistograms() {
        let text = StatsFormatter.text(store().snapshot())
        let lines = text.split(separator: "\n").map(String.init)
        #expect(Array(lines.prefix(3)) == ["cluster.web.bind_errors: 0", "cluster.web.upstream_cx_active: 2",
                                           "cluster.web.upstream_rq_total: 4"])
        #expect(lines[3].hasPrefix("cluster.web.upstream_rq_time: P0("))
        #expect(lines[3].contains(" P99.9("))
        #expect(lines[4] == "http.admin.downstream_rq_time: No recorded values")
    }

    @Test func filterAndUsedOnly() throws {
        let options = StatsFormatter.Options(filter: try StatsFormatter.CompiledFilter("rq_"), usedOnly: true)
        let text = StatsFormatter.text(store().snapshot(), options)
        #expect(text.split(separator: "\n").map { String($0.prefix(while: { $0 != ":" })) }
                == ["cluster.web.upstream_rq_total", "cluster.web.upstream_rq_time"])
    }

    @Test func prometheusUsesEnvoysNamesAndLabels() {
        let text = StatsFormatter.prometheus(store().snapshot())
        #expect(text.contains("# TYPE envoy_cluster_upstream_rq_total counter\nenvoy_cluster_upstream_rq_total{envoy_cluster_name=\"web\"} 4\n"))
        #expect(text.contains("# TYPE envoy_cluster_upstream_cx_active gauge\n"))
        #expect(text.contains("# TYPE envoy_cluster_upstream_rq_time histogram\n"))
        #expect(text.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"0.5\"} 0\n"))
        #expect(text.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"5\"} 1\n"))
        #expect(text.contains("envoy_cluster_upstream_rq_time_bucket{envoy_cluster_name=\"web\",le=\"3600000\"} 1\n"))
        #expect(text.contains("envoy_cluster_upstream_rq_time_count{envoy_cluster_name=\"web\"} 1\n"))
        #expect(text.contains("envoy_http_downstream_rq_time_bucket{le=\"+Inf\"} 0\n"))
    }

    @Test func adminRequestDecodesQueries() {
        let request = AdminRequest(method: "GET", uri: "/stats?filter=a%2Eb&usedonly")
        #expect(request.path == "/stats")
        #expect(request.parameter("filter") == "a.b")
        #expect(request.has("usedonly"))
    }
}
