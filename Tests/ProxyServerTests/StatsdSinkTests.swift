import NIOCore
import NIOPosix
import ProxyCore
import Testing
import XDSAPI
@testable import ProxyServer

@Suite struct StatsdSinkTests {
    func sink(_ store: StatsStore, prefix: String = "") throws -> StatsdSink {
        var proto = Envoy_Config_Metrics_V3_StatsdSink()
        proto.address.socketAddress.address = "127.0.0.1"
        proto.address.socketAddress.portValue = 8125
        proto.prefix = prefix
        return try StatsdSink(proto, path: "stats_sinks[0]", store: store)
    }

    @Test func countersAreDeltasAndGaugesAreValues() throws {
        let store = StatsStore()
        let requests = store.counter("cluster.web.upstream_rq_total", StatTags(extractedName: "cluster.upstream_rq_total", tags: []))
        let unused = store.counter("cluster.web.upstream_rq_timeout", StatTags(extractedName: "cluster.upstream_rq_timeout", tags: []))
        let active = store.gauge("cluster.web.upstream_cx_active", StatTags(extractedName: "cluster.upstream_cx_active", tags: []))
        let statsd = try sink(store)
        requests.add(3)
        active.set(2)
        #expect(statsd.lines() == ["envoy.cluster.web.upstream_rq_total:3|c", "envoy.cluster.web.upstream_cx_active:2|g"])
        requests.add(2)
        #expect(statsd.lines().first == "envoy.cluster.web.upstream_rq_total:2|c")
        #expect(statsd.lines().first == "envoy.cluster.web.upstream_rq_total:0|c", "a used counter keeps being sent")
        _ = unused
    }

    @Test func histogramSamplesAreKeptPerLoopAndSentAsTimers() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let loops = Array(group.makeIterator())
        let samples = HistogramSampleBuffers(loops: loops)
        let store = StatsStore()
        store.setHistogramSampleObserver(samples)
        let histogram = store.histogram("cluster.web.upstream_rq_time", StatTags(extractedName: "cluster.upstream_rq_time"))
        try await loops[0].submit { histogram.record(milliseconds: 4.6) }.get()
        try await loops[1].submit { histogram.record(milliseconds: 12) }.get()
        histogram.record(milliseconds: 99)  // off the event loops: counted in the buckets, not kept as a sample
        let drained = try await samples.drain(on: loops[0]).get()
        #expect(try sink(store).lines(samples: drained).sorted() == ["envoy.cluster.web.upstream_rq_time:12|ms",
                                                                     "envoy.cluster.web.upstream_rq_time:5|ms"])
        #expect(try await samples.drain(on: loops[0]).get().isEmpty, "a drain takes the samples")
        #expect(histogram.snapshot().count == 3)
        try await group.shutdownGracefully()
    }

    @Test func aCustomPrefix() throws {
        let store = StatsStore()
        store.counter("server.x", StatTags(extractedName: "server.x", tags: [])).increment()
        #expect(try sink(store, prefix: "mesh").lines() == ["mesh.server.x:1|c"])
    }

    @Test func datagramsHoldWholeLinesUpTo1400Bytes() {
        let lines = (0..<100).map { "envoy.cluster.c\($0).upstream_rq_total:\($0)|c" }
        let packets = StatsdSink.datagrams(lines)
        #expect(packets.count > 1)
        #expect(packets.allSatisfy { $0.utf8.count <= 1_400 })
        #expect(packets.joined(separator: "\n").split(separator: "\n").map(String.init) == lines)
    }

    @Test func tcpClustersAreRefused() {
        var proto = Envoy_Config_Metrics_V3_StatsdSink()
        proto.tcpClusterName = "statsd"
        #expect(throws: ListenerConfigError.self) { try StatsdSink(proto, path: "s", store: StatsStore()) }
    }
}
