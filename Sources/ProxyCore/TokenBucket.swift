import NIOCore
import Synchronization

/// A token bucket shared by every event loop without a lock: full at the start, `tokensPerFill`
/// more (up to `maxTokens`) at each `fillInterval`, refilled lazily by whichever request comes
/// first after a fill is due. Envoy's local rate limit counts this way.
public final class TokenBucket: Sendable {
    public let maxTokens: Int64
    public let tokensPerFill: Int64
    public let fillInterval: TimeAmount
    private let tokens: Atomic<Int64>
    /// Uptime (ns) of the next fill.
    private let nextFill: Atomic<Int64>

    public init(maxTokens: Int64, tokensPerFill: Int64, fillInterval: TimeAmount, now: NIODeadline = .now()) {
        self.maxTokens = maxTokens
        self.tokensPerFill = tokensPerFill
        self.fillInterval = fillInterval
        tokens = Atomic(maxTokens)
        nextFill = Atomic(Int64(now.uptimeNanoseconds) + fillInterval.nanoseconds)
    }

    /// Takes a token if there is one.
    public func consume(now: NIODeadline = .now()) -> Bool {
        refill(now: Int64(now.uptimeNanoseconds))
        var current = tokens.load(ordering: .relaxed)
        while current > 0 {
            let (exchanged, seen) = tokens.compareExchange(expected: current, desired: current - 1, ordering: .relaxed)
            if exchanged { return true }
            current = seen
        }
        return false
    }

    private func refill(now: Int64) {
        var due = nextFill.load(ordering: .relaxed)
        let interval = max(1, fillInterval.nanoseconds)
        while now >= due {
            let fills = (now - due) / interval + 1
            let (claimed, seen) = nextFill.compareExchange(expected: due, desired: due + fills * interval, ordering: .relaxed)
            guard claimed else {
                due = seen
                continue
            }
            // This caller won the fills that were due; add them, never above the maximum.
            let added = min(maxTokens, fills &* tokensPerFill)
            var current = tokens.load(ordering: .relaxed)
            while true {
                let (exchanged, seen) = tokens.compareExchange(expected: current, desired: min(maxTokens, current + added),
                                                               ordering: .relaxed)
                if exchanged { return }
                current = seen
            }
        }
    }
}
