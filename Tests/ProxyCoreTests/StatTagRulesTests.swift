import Testing
@testable import ProxyCore

/// stats_tags and use_all_default_tags, as they shape a stat's Prometheus name and labels.
@Suite struct StatTagRulesTests {
    static let builtIn = StatTags(extractedName: "cluster.upstream_cx_total", tags: [StatTags.Tag("envoy_cluster_name", "web")])
    static let clusterExtractor: StatTagRules.Extractor = { name in
        name.hasPrefix("cluster.") ? ("web.", "web") : nil
    }

    @Test func noRulesLeaveTheBuiltInTags() {
        #expect(StatTagRules().apply(fullName: "cluster.web.upstream_cx_total", to: Self.builtIn) == Self.builtIn)
    }

    @Test func fixedTagsComeFirstAndCustomOnesLast() {
        let rules = StatTagRules(fixed: [StatTags.Tag("region", "east")], extractors: [("my_cluster", Self.clusterExtractor)])
        let tags = rules.apply(fullName: "cluster.web.upstream_cx_total", to: Self.builtIn)
        #expect(tags.extractedName == "cluster.upstream_cx_total")
        #expect(tags.tags.map(\.name) == ["region", "envoy_cluster_name", "my_cluster"])
    }

    @Test func withoutDefaultTagsTheFullNameLosesOnlyWhatExtractorsTake() {
        let rules = StatTagRules(useDefaultTags: false, extractors: [("my_cluster", Self.clusterExtractor)])
        let tags = rules.apply(fullName: "cluster.web.upstream_cx_total", to: Self.builtIn)
        #expect(tags == StatTags(extractedName: "cluster.upstream_cx_total", tags: [StatTags.Tag("my_cluster", "web")]))
        let untouched = rules.apply(fullName: "server.live", to: StatTags(extractedName: "server.live"))
        #expect(untouched == StatTags(extractedName: "server.live"))
    }

    @Test func theStoreAppliesTheRulesWhenAStatIsMade() {
        let store = StatsStore()
        store.setTagRules(StatTagRules(fixed: [StatTags.Tag("region", "east")]))
        let counter = store.counter("server.total_connections", StatTags(extractedName: "server.total_connections"))
        #expect(counter.tags.tags == [StatTags.Tag("region", "east")])
    }
}
