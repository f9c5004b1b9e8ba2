import Atomics
import Synchronization

/// Picks a host for each request. Lock-free; shared by all event loops of a cluster.
public final class LoadBalancer: AtomicReference, Sendable {
    public enum Policy: Sendable, Equatable {
        case roundRobin
        case random
        /// Envoy's LEAST_REQUEST with equal weights: the power of two choices, by active requests.
        case leastRequest
    }

    public let policy: Policy
    public let hosts: [Host]
    /// Host indices repeated by weight, so weighted round robin is one counter step.
    private let schedule: [Int]
    private let cursor = Atomic<UInt64>(0)

    public init(policy: Policy, hosts: [Host]) {
        self.policy = policy
        self.hosts = hosts
        let weights = hosts.map { Int($0.weight) }
        if Set(weights).count <= 1 {
            schedule = Array(hosts.indices)
        } else {
            schedule = Self.interleavedSchedule(weights: weights)
        }
    }

    /// The next host, or nil when the cluster has none (Envoy's `no healthy upstream`).
    public func pick() -> Host? {
        guard !schedule.isEmpty else { return nil }
        let step = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        switch policy {
        case .roundRobin:
            return hosts[schedule[Int(step % UInt64(schedule.count))]]
        case .random:
            return hosts[schedule[Int(Self.mix(step) % UInt64(schedule.count))]]
        case .leastRequest:
            let first = hosts[schedule[Int(Self.mix(step) % UInt64(schedule.count))]]
            guard hosts.count > 1 else { return first }
            let second = hosts[schedule[Int(Self.mix(step &+ 0x5851_F42D_4C95_7F2D) % UInt64(schedule.count))]]
            return second.stats.rqActive.load(ordering: .relaxed) < first.stats.rqActive.load(ordering: .relaxed)
                ? second : first
        }
    }

    /// splitmix64: a cheap, well-spread hash of a counter, good enough to pick hosts at random
    /// without a system call per request.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15 &+ seed
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    private static let seed = UInt64.random(in: .min ... .max)

    /// Smooth weighted round robin: spreads each host's turns across the cycle instead of in runs.
    static func interleavedSchedule(weights rawWeights: [Int]) -> [Int] {
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let divisor = rawWeights.reduce(0, gcd)
        let weights = rawWeights.map { $0 / max(1, divisor) }
        let total = weights.reduce(0, +)
        var current = Array(repeating: 0, count: weights.count)
        var schedule: [Int] = []
        schedule.reserveCapacity(total)
        for _ in 0..<total {
            for index in weights.indices { current[index] += weights[index] }
            let best = current.indices.max { current[$0] < current[$1] }!
            current[best] -= total
            schedule.append(best)
        }
        return schedule
    }
}
