import Foundation
import GRPCCore
import Logging
import Synchronization
import Testing
import XDSAPI
import XDSResource
@testable import ControlPlane

/// One ADS stream's session: requests answered on the stream's task, snapshot changes on a task of
/// their own when the stream is idle, or by the writer when it is busy, in order and at most one.
@Suite struct ADSStreamSessionTests {
    typealias Response = Envoy_Service_Discovery_V3_DiscoveryResponse

    /// Records what is written; while closed, a write waits until the gate opens (a proxy that
    /// does not read).
    final class GatedWriter: RPCWriterProtocol, Sendable {
        private struct State {
            var open = true
            var written: [Response] = []
            var waiting: [CheckedContinuation<Void, Never>] = []
            var entered = 0
        }

        private let state = Mutex(State())

        var written: [Response] { state.withLock { $0.written } }
        var entered: Int { state.withLock { $0.entered } }

        func close() { state.withLock { $0.open = false } }

        func open() {
            let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                state.open = true
                defer { state.waiting = [] }
                return state.waiting
            }
            for continuation in waiting { continuation.resume() }
        }

        func write(_ element: Response) async throws {
            await withCheckedContinuation { continuation in
                let proceed = state.withLock { state -> Bool in
                    state.entered += 1
                    if state.open { return true }
                    state.waiting.append(continuation)
                    return false
                }
                if proceed { continuation.resume() }
            }
            state.withLock { $0.written.append(element) }
        }

        func write(contentsOf elements: some Sequence<Response>) async throws {
            for element in elements { try await write(element) }
        }
    }

    /// Polls `condition` for up to five seconds.
    func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(10))
        }
        return condition()
    }

    func start(_ cache: SnapshotCache, writer: GatedWriter)
        -> (requests: AsyncThrowingStream<Envoy_Service_Discovery_V3_DiscoveryRequest, any Error>.Continuation,
            run: Task<Void, any Error>)
    {
        let server = AggregatedDiscoveryServer(cache: cache, registry: SyncRegistry(), metrics: ControlPlaneMetrics(),
                                               logger: Logger(label: "test"))
        let session = ADSStreamSession<SotWStreamState>(server: server, responses: RPCWriter(wrapping: writer), peer: [])
        let (requests, continuation) = AsyncThrowingStream<Envoy_Service_Discovery_V3_DiscoveryRequest, any Error>.makeStream()
        let run = Task { try await session.run(requests: RPCAsyncSequence(wrapping: requests)) }
        return (continuation, run)
    }

    func clusterRequest(version: String = "", nonce: String = "") -> Envoy_Service_Discovery_V3_DiscoveryRequest {
        var request = Fixtures.request(.cluster, version: version, nonce: nonce)
        request.node.id = "n"
        request.node.cluster = "c"
        return request
    }

    /// Changes that come while a response waits on a proxy that does not read are answered after
    /// it, once, from the latest snapshot.
    @Test func changesWhileWritingAreAnsweredOnceByTheWriterAfterTheQueue() async throws {
        let cache = SnapshotCache()
        cache.update([Fixtures.cluster("a", timeoutSeconds: 1)])
        let writer = GatedWriter()
        writer.close()
        let (requests, run) = start(cache, writer: writer)
        requests.yield(clusterRequest())
        #expect(try await eventually { writer.entered == 1 })
        cache.update([Fixtures.cluster("a", timeoutSeconds: 2)])
        cache.update([Fixtures.cluster("a", timeoutSeconds: 3)])
        writer.open()
        #expect(try await eventually { writer.written.count == 2 })
        try await Task.sleep(for: .milliseconds(100))
        let written = writer.written
        #expect(written.count == 2, "two changes while busy make one response")
        #expect(written.map(\.nonce) == ["1", "2"])
        let latest = Fixtures.snapshot([Fixtures.cluster("a", timeoutSeconds: 3)]).resources(ofType: TypeURL.cluster)
        #expect(written.last?.versionInfo == ContentHash.version(ofSet: Array(latest.values)))
        requests.finish()
        try await run.value
    }

    /// A change that finds the stream idle (its last response acknowledged, its task waiting for
    /// the next request) is answered without any request.
    @Test func aChangeToAnIdleStreamIsAnsweredOnItsOwn() async throws {
        let cache = SnapshotCache()
        cache.update([Fixtures.cluster("a")])
        let writer = GatedWriter()
        let (requests, run) = start(cache, writer: writer)
        requests.yield(clusterRequest())
        #expect(try await eventually { writer.written.count == 1 })
        let first = try #require(writer.written.first)
        requests.yield(clusterRequest(version: first.versionInfo, nonce: first.nonce))
        try await Task.sleep(for: .milliseconds(50))
        #expect(writer.written.count == 1, "an ACK is not answered")
        cache.update([Fixtures.cluster("a"), Fixtures.cluster("b")])
        #expect(try await eventually { writer.written.count == 2 })
        #expect(writer.written.last?.resources.count == 2)
        requests.finish()
        try await run.value
    }
}
