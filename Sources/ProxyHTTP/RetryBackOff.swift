/// Envoy's jittered exponential back-off: the n-th retry waits a random time below
/// (2^n - 1) * base milliseconds, and never longer than max.
struct RetryBackOff {
    let baseMs: Int64
    let maxMs: Int64

    func delayMs(retry number: Int, random: UInt64) -> Int64 {
        let exponent = min(max(1, number), 32)
        let ceiling = ((Int64(1) << Int64(exponent)) - 1) * baseMs
        guard ceiling > 0 else { return 0 }
        return min(Int64(random % UInt64(ceiling)), maxMs)
    }
}
