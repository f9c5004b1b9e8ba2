import Atomics
import Foundation

/// LEAST_REQUEST over hosts of unequal weight, as Envoy does it: earliest-deadline-first, where a host
/// picked now is next due after 1 / (weight / (active requests + 1)^bias). With no requests in flight
/// this is smooth weighted round robin; a host that is slow to answer gathers active requests and is
/// picked less. Deadlines are atomics shared by all event loops: two loops picking at once may both
/// take the same host, which costs balance for an instant, never correctness.
final class WeightedLeastRequest: Sendable {
    private let hosts: [Host]
    private let bias: Double
    /// Each host's next deadline, as the bit pattern of a Double.
    private let deadlines: [ManagedAtomic<UInt64>]

    init(hosts: [Host], activeRequestBias: Double) {
        self.hosts = hosts
        self.bias = activeRequestBias
        deadlines = hosts.map { ManagedAtomic((1 / Double(max(1, $0.weight))).bitPattern) }
    }

    func pick() -> Host {
        var best = 0
        var earliest = Double(bitPattern: deadlines[0].load(ordering: .relaxed))
        for index in 1..<deadlines.count {
            let deadline = Double(bitPattern: deadlines[index].load(ordering: .relaxed))
            if deadline < earliest {
                best = index
                earliest = deadline
            }
        }
        let host = hosts[best]
        deadlines[best].store((earliest + 1 / effectiveWeight(of: host)).bitPattern, ordering: .relaxed)
        return host
    }

    /// Envoy's `weight / (active + 1)^active_request_bias`; a bias of 0 leaves the weight as it is.
    func effectiveWeight(of host: Host) -> Double {
        let weight = Double(max(1, host.weight))
        guard bias != 0 else { return weight }
        let active = Double(host.stats.rqActive.load(ordering: .relaxed)) + 1
        return weight / (bias == 1 ? active : pow(active, bias))
    }
}
