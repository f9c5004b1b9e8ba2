import NIOCore
import NIOPosix
import ProxyCore

/// Histogram samples kept for the statsd sink, one buffer per event loop: a sample is appended on
/// the thread that records it, with no lock, and each loop hands its buffer over when the sink
/// flushes (by a task on that loop). Samples recorded off the event loops, or beyond a loop's
/// limit between two flushes, are dropped rather than held without bound.
final class HistogramSampleBuffers: HistogramSampleObserver, @unchecked Sendable {
    typealias Sample = (histogram: Histogram, milliseconds: UInt64)

    /// Touched only by the thread of the loop it belongs to.
    final class Buffer: @unchecked Sendable {
        var samples: [Sample] = []
    }

    static let perLoopLimit = 65_536
    private let current = ThreadSpecificVariable<Buffer>()
    private let loops: [any EventLoop]

    init(loops: [any EventLoop]) {
        self.loops = loops
        for loop in loops {
            loop.execute { [current] in current.currentValue = Buffer() }
        }
    }

    func record(_ histogram: Histogram, milliseconds: Double) {
        guard let buffer = current.currentValue, buffer.samples.count < Self.perLoopLimit else { return }
        // Envoy records whole milliseconds.
        buffer.samples.append((histogram, UInt64(max(0, milliseconds).rounded())))
    }

    /// What every loop recorded since the last drain.
    func drain(on loop: any EventLoop) -> EventLoopFuture<[Sample]> {
        let parts = loops.map { owner in
            owner.submit { [current] () -> [Sample] in
                guard let buffer = current.currentValue else { return [] }
                defer { buffer.samples.removeAll(keepingCapacity: true) }
                return buffer.samples
            }
        }
        return EventLoopFuture.whenAllSucceed(parts, on: loop).map { $0.flatMap { $0 } }
    }
}
