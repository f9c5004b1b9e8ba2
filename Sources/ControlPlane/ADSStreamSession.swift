import Foundation
import GRPCCore
import Synchronization
import XDSAPI

/// One ADS stream's protocol state and the responses waiting to go out. The task gRPC runs the
/// stream on reads requests and answers them; a snapshot change that finds the stream idle is
/// answered by a short-lived task of its own, and one that finds it writing is left for the
/// writer to answer when it is done. Whoever writes drains the queue in order, so responses leave
/// in the order the state machine made them, and a stream that cannot keep up holds at most one
/// pending change (the latest snapshot wins). A stream used to keep a second task reading its
/// requests for its whole life: with its task group and event sequence ~5 KB a proxy at 1,000.
final class ADSStreamSession<State: ADSStreamProtocol>: Sendable {
    private struct Guarded {
        var state = State()
        /// Secret names this stream asked for that its node is not served, each logged once.
        var refusedSecrets = Set<String>()
        var queued: [State.Response] = []
        var writing = false
        var changePending = false
    }

    private let guarded = Mutex(Guarded())
    private let server: AggregatedDiscoveryServer
    private let responses: RPCWriter<State.Response>
    private let peer: [String]
    /// The cache watcher this stream registered; set once, before any change can arrive.
    private let watcher = Atomic<Int>(-1)

    init(server: AggregatedDiscoveryServer, responses: RPCWriter<State.Response>, peer: [String]) {
        self.server = server
        self.responses = responses
        self.peer = peer
    }

    /// Reads and answers requests until the proxy goes away. The cache watcher is registered for
    /// exactly as long.
    func run(requests: RPCAsyncSequence<State.Request, any Error>) async throws {
        let cache = server.cache
        watcher.store(cache.addWatcher { [weak self] _ in self?.snapshotChanged() }, ordering: .releasing)
        defer { cache.removeWatcher(watcher.load(ordering: .acquiring)) }
        var iterator = requests.makeAsyncIterator()
        while true {
            let request: State.Request?
            do {
                request = try await iterator.next()
            } catch {
                return  // The proxy went away; the stream ends.
            }
            guard let request else { return }
            try await receive(request)
        }
    }

    /// What `/debug/syncz` shows of this stream: its node and, per type, what was sent and acknowledged.
    var status: (node: Envoy_Config_Core_V3_Node?, types: [ResourceType: SyncRegistry.TypeStatus]) {
        guarded.withLock { ($0.state.node, $0.state.syncStatus) }
    }

    private func receive(_ request: State.Request) async throws {
        // The node's first request: the cache learns whose stream this is and meshd's CA issues its
        // certificate before the answer is built. Outside the lock: issuing publishes to the cache,
        // which tells every watcher, this stream's among them.
        if guarded.withLock({ $0.state.node == nil }), let node = State.node(of: request) {
            server.cache.watch(watcher.load(ordering: .acquiring), isFor: node.id)
            server.nodeConnected?(node, peer)
        }
        let mustWrite = guarded.withLock { guarded in
            guarded.queued += server.respond(to: request, state: &guarded.state, refusedSecrets: &guarded.refusedSecrets)
            return Self.claimWriting(&guarded)
        }
        if mustWrite { try await drain() }
    }

    /// From the cache's change callback: answered now by a task of its own if the stream is idle,
    /// else by the writer once the queue is empty.
    private func snapshotChanged() {
        let mustWrite = guarded.withLock { guarded in
            guarded.changePending = true
            return Self.claimWriting(&guarded)
        }
        if mustWrite { Task { try? await self.drain() } }
    }

    private static func claimWriting(_ guarded: inout Guarded) -> Bool {
        guard !guarded.writing, !guarded.queued.isEmpty || guarded.changePending else { return false }
        guarded.writing = true
        return true
    }

    /// Writes what is queued, then answers a pending change, until there is nothing left.
    private func drain() async throws {
        while let next = nextToWrite() {
            do {
                try await responses.write(next)
            } catch {
                guarded.withLock { $0.writing = false }
                throw error
            }
            if let type = ResourceType(typeURL: State.typeURL(of: next)) { server.metrics.pushed(type) }
        }
    }

    /// The next response to write, or nil (and the stream idle) when there is none. Kept out of
    /// `drain`: whatever an async function holds is in its frame, which its task keeps.
    @inline(never)
    private func nextToWrite() -> State.Response? {
        guarded.withLock { guarded in
            if guarded.queued.isEmpty, guarded.changePending {
                guarded.changePending = false
                let snapshot = server.cache.snapshot(for: guarded.state.identity)
                guarded.queued = guarded.state.snapshotChanged(snapshot, now: Date())
            }
            guard !guarded.queued.isEmpty else {
                guarded.queued = []  // without the room it grew to
                guarded.writing = false
                return nil
            }
            return guarded.queued.removeFirst()
        }
    }
}
