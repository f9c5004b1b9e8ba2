import NIOCore

/// A pool's pending look for connections idle past `idle_timeout`: at most one at a time, and
/// re-armed for the next connection due, so pooling a connection costs no timer of its own.
/// Loop-confined, like the pools.
final class IdleSweep {
    private var task: Scheduled<Void>?

    /// A sweep is pending (`arm` would do nothing).
    var isArmed: Bool { task != nil }

    /// Arms the sweep for `deadline` unless one is pending. `sweep` closes what is due at the time
    /// it is given and returns when the next connection will be, if any.
    func arm(on loop: any EventLoop, at deadline: NIODeadline, sweep: @escaping (NIODeadline) -> NIODeadline?) {
        guard task == nil else { return }
        task = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            self.task = nil
            if let next = sweep(loop.now) { self.arm(on: loop, at: next, sweep: sweep) }
        }
    }

    func cancel() {
        task?.cancel()
        task = nil
    }

    /// The earlier of two deadlines, either possibly absent.
    static func earliest(_ current: NIODeadline?, _ candidate: NIODeadline) -> NIODeadline {
        current.map { min($0, candidate) } ?? candidate
    }
}
