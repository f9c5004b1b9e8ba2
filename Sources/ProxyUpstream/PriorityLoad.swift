/// Envoy's priority levels: the share of requests each EDS priority gets from how healthy its hosts
/// are, and whether a level is in panic (its unavailable hosts serve too). A level's health is its
/// healthy percentage times the overprovisioning factor (140 % by default), capped at 100; the
/// levels are then given load in priority order, scaled so the total is 100. When even that
/// normalized health is under the panic threshold, every level is in panic and takes load by its
/// number of hosts.
struct PriorityLoad: Equatable {
    /// Percent of requests per level; they sum to 100 when any level has hosts.
    var percent: [Int]
    var panic: [Bool]

    static func compute(healthy: [Int], total: [Int], overprovisioningFactor: Int = 140,
                        panicThreshold: Double = 50) -> PriorityLoad {
        let health = zip(healthy, total).map { healthy, total in
            total == 0 ? 0 : min(100, overprovisioningFactor * healthy / total)
        }
        let normalized = min(100, health.reduce(0, +))
        if Double(normalized) < panicThreshold {
            // Total panic: by host count, every level's hosts usable.
            let hosts = total.reduce(0, +)
            guard hosts > 0 else { return PriorityLoad(percent: total.map { _ in 0 }, panic: total.map { _ in true }) }
            var percent = total.map { $0 * 100 / hosts }
            if let first = total.firstIndex(where: { $0 > 0 }) { percent[first] += 100 - percent.reduce(0, +) }
            return PriorityLoad(percent: percent, panic: total.map { _ in true })
        }
        var remaining = 100
        var percent = health.map { level -> Int in
            let load = min(remaining, level * 100 / normalized)
            remaining -= load
            return load
        }
        // Rounding leaves a little over: the first level with any health takes it.
        if remaining > 0, let first = health.firstIndex(where: { $0 > 0 }) { percent[first] += remaining }
        let panic = zip(healthy, total).map { healthy, total in
            total > 0 && Double(healthy * 100) < panicThreshold * Double(total)
        }
        return PriorityLoad(percent: percent, panic: panic)
    }

    /// The level a point in 0..<100 falls in.
    func level(at point: Int) -> Int {
        var cumulative = 0
        for (index, share) in percent.enumerated() {
            cumulative += share
            if point < cumulative { return index }
        }
        return max(0, percent.lastIndex(where: { $0 > 0 }) ?? 0)
    }
}
