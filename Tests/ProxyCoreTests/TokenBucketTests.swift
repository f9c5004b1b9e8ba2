import NIOCore
import Testing
@testable import ProxyCore

/// The local rate limit's bucket on a manual clock.
@Suite struct TokenBucketTests {
    @Test func startsFullRefillsPerIntervalAndNeverAboveTheMaximum() {
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let bucket = TokenBucket(maxTokens: 3, tokensPerFill: 2, fillInterval: .seconds(1), now: start)
        #expect((0..<4).map { _ in bucket.consume(now: start) } == [true, true, true, false])
        let later = start + .milliseconds(1_100)
        #expect((0..<3).map { _ in bucket.consume(now: later) } == [true, true, false], "one fill of two")
        let muchLater = start + .seconds(10)
        #expect((0..<4).map { _ in bucket.consume(now: muchLater) } == [true, true, true, false], "capped at three")
    }
}
