import Atomics
import ProxyCore
import Synchronization

/// Picks a host for each request. Lock-free; shared by all event loops of a cluster.
public final class LoadBalancer: AtomicReference, Sendable {
    public enum Policy: Sendable, Equatable {
        case roundRobin
        case random
        /// Envoy's LEAST_REQUEST: with equal weights the fewest active requests of `choiceCount` random
        /// hosts; with unequal weights `WeightedLeastRequest`, weights lowered by active requests.
        case leastRequest(choiceCount: Int, activeRequestBias: Double)

        /// Envoy's defaults: two choices, a bias of 1.
        public static let leastRequestDefault = Policy.leastRequest(choiceCount: 2, activeRequestBias: 1)
        /// RING_HASH: a consistent-hash ring of `minimumRingSize`...`maximumRingSize` entries.
        case ringHash(minimumRingSize: Int, maximumRingSize: Int)
        /// MAGLEV: a lookup table of `tableSize` (a prime) entries.
        case maglev(tableSize: Int)
    }

    public let policy: Policy
    public let hosts: [Host]
    /// Host indices repeated by weight, so weighted round robin is one counter step.
    private let schedule: [Int]
    private let cursor = Atomic<UInt64>(0)
    /// RING_HASH: (hash, host index) sorted by hash. MAGLEV: host index per table slot.
    private let ring: [(hash: UInt64, host: Int)]
    private let table: [Int]
    /// LEAST_REQUEST over unequal weights.
    private let weightedLeastRequest: WeightedLeastRequest?

    /// One balancer per EDS priority, in priority order, when the hosts are in more than one.
    public let levels: [LoadBalancer]
    /// Hosts EDS marked unhealthy; they serve only in panic.
    public let failedEDSHealthCount: Int
    /// `locality_weighted_lb_config`: a locality is picked first, by weight and health, then a host in it.
    public let localityWeighted: Bool
    /// With locality weighting (and one priority here), one balancer per locality, in EDS order.
    public let localityGroups: [LoadBalancer]
    /// For zone-aware routing (one priority, no locality weighting): one balancer per locality, the
    /// proxy's own locality first when the hosts have it (`hasLocalZone`).
    public let localZone: Host.Locality?
    public let zoneGroups: [LoadBalancer]
    public let hasLocalZone: Bool

    public init(policy: Policy, hosts: [Host], localityWeighted: Bool = false, localZone: Host.Locality? = nil) {
        self.policy = policy
        self.hosts = hosts
        self.localityWeighted = localityWeighted
        self.localZone = localZone
        failedEDSHealthCount = hosts.filter(\.failedEDSHealth).count
        let priorities = Set(hosts.map(\.priority))
        levels = priorities.count > 1
            ? (0...(priorities.max() ?? 0)).map { level in
                LoadBalancer(policy: policy, hosts: hosts.filter { $0.priority == level }, localityWeighted: localityWeighted)
            }
            : []
        if localityWeighted, levels.isEmpty {
            localityGroups = Self.groupedByLocality(hosts).map { LoadBalancer(policy: policy, hosts: $0) }
        } else {
            localityGroups = []
        }
        if let localZone, !localityWeighted, priorities.count <= 1 {
            let groups = Self.groupedByLocality(hosts, first: localZone)
            hasLocalZone = groups.first?.first?.locality == localZone
            zoneGroups = groups.count >= 2 ? groups.map { LoadBalancer(policy: policy, hosts: $0) } : []
        } else {
            hasLocalZone = false
            zoneGroups = []
        }
        switch policy {
        case .ringHash(let minimum, let maximum): ring = Self.ring(hosts, minimum: minimum, maximum: maximum); table = []
        case .maglev(let size): table = Self.maglevTable(hosts, size: size); ring = []
        default: ring = []; table = []
        }
        let weights = hosts.map { Int($0.weight) }
        if Set(weights).count <= 1 {
            schedule = Array(hosts.indices)
        } else {
            schedule = Self.interleavedSchedule(weights: weights)
        }
        if case .leastRequest(_, let bias) = policy, Set(weights).count > 1 {
            weightedLeastRequest = WeightedLeastRequest(hosts: hosts, activeRequestBias: bias)
        } else {
            weightedLeastRequest = nil
        }
    }

    /// The hosts by locality, in the order their localities first appear (EDS order), with `first`'s
    /// group moved to the front when there is one.
    static func groupedByLocality(_ hosts: [Host], first: Host.Locality? = nil) -> [[Host]] {
        var order: [Host.Locality] = []
        var grouped: [Host.Locality: [Host]] = [:]
        for host in hosts {
            if grouped[host.locality] == nil { order.append(host.locality) }
            grouped[host.locality, default: []].append(host)
        }
        if let first, let index = order.firstIndex(of: first) { order.insert(order.remove(at: index), at: 0) }
        return order.map { grouped[$0]! }
    }

    /// Whether `pick(hash:)` follows the hash (ring hash, Maglev).
    public var isConsistentHashing: Bool { !ring.isEmpty || !table.isEmpty }

    /// The next host, or nil when the cluster has none (Envoy's `no healthy upstream`). Hashing
    /// balancers use `hash` (a request without one gets a random point, as in Envoy).
    public func pick(hash: UInt64? = nil) -> Host? {
        guard !schedule.isEmpty else { return nil }
        let step = cursor.wrappingAdd(1, ordering: .relaxed).oldValue
        switch policy {
        case .ringHash:
            let point = hash ?? Self.mix(step)
            var low = 0, high = ring.count
            while low < high {
                let middle = (low + high) / 2
                if ring[middle].hash < point { low = middle + 1 } else { high = middle }
            }
            return hosts[ring[low == ring.count ? 0 : low].host]
        case .maglev:
            return hosts[table[Int((hash ?? Self.mix(step)) % UInt64(table.count))]]
        case .roundRobin:
            return hosts[schedule[Int(step % UInt64(schedule.count))]]
        case .random:
            return hosts[schedule[Int(Self.mix(step) % UInt64(schedule.count))]]
        case .leastRequest(let choiceCount, _):
            if let weightedLeastRequest { return weightedLeastRequest.pick() }
            var chosen = hosts[Int(Self.mix(step) % UInt64(hosts.count))]
            guard hosts.count > 1 else { return chosen }
            var fewest = chosen.stats.rqActive.load(ordering: .relaxed)
            for choice in 1..<max(2, choiceCount) {
                let other = hosts[Int(Self.mix(step &+ UInt64(choice) &* 0x5851_F42D_4C95_7F2D) % UInt64(hosts.count))]
                let active = other.stats.rqActive.load(ordering: .relaxed)
                if active < fewest {
                    chosen = other
                    fewest = active
                }
            }
            return chosen
        }
    }

    /// Envoy's ring: each host gets entries in proportion to its weight, hashed from
    /// `address:port_N`, so the ring survives other hosts coming and going.
    static func ring(_ hosts: [Host], minimum: Int, maximum: Int) -> [(hash: UInt64, host: Int)] {
        guard !hosts.isEmpty else { return [] }
        let totalWeight = hosts.reduce(0) { $0 + Double($1.weight) }
        let minWeight = hosts.map { Double($0.weight) / totalWeight }.min()!
        // Enough entries that the lightest host gets at least one, within the configured bounds.
        let scale = min(max((minWeight * Double(minimum)).rounded(.up) / minWeight, Double(minimum)), Double(maximum))
        var entries: [(hash: UInt64, host: Int)] = []
        for (index, host) in hosts.enumerated() {
            let count = max(1, Int((scale * Double(host.weight) / totalWeight).rounded()))
            for replica in 0..<count {
                entries.append((XXHash64.hash("\(host.addressDescription)_\(replica)"), index))
            }
        }
        return entries.sorted { $0.hash < $1.hash }
    }

    /// Maglev's table: each host walks its own permutation of the slots (offset and skip from two
    /// hashes of its address) and claims free ones, weighted hosts more often.
    static func maglevTable(_ hosts: [Host], size: Int) -> [Int] {
        guard !hosts.isEmpty else { return [] }
        let m = UInt64(size)
        let offsets = hosts.map { XXHash64.hash($0.addressDescription) % m }
        let skips = hosts.map { XXHash64.hash($0.addressDescription, seed: 1) % (m - 1) + 1 }
        let maxWeight = Double(hosts.map(\.weight).max()!)
        var next = Array(repeating: UInt64(0), count: hosts.count)
        var credit = Array(repeating: 0.0, count: hosts.count)
        var table = Array(repeating: -1, count: size)
        var filled = 0
        while filled < size {
            for index in hosts.indices where filled < size {
                credit[index] += Double(hosts[index].weight) / maxWeight
                guard credit[index] >= 1 else { continue }
                credit[index] -= 1
                var slot = Int((offsets[index] + next[index] * skips[index]) % m)
                while table[slot] >= 0 {
                    next[index] += 1
                    slot = Int((offsets[index] + next[index] * skips[index]) % m)
                }
                table[slot] = index
                next[index] += 1
                filled += 1
            }
        }
        return table
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
