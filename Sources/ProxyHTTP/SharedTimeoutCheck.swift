import NIOCore

/// One scheduled wake-up for the timeouts of all the streams of an HTTP/2 connection. Each stream's
/// connection manager keeps its own next deadline and registers it here; the check sleeps until the
/// earliest and then lets the due ones act, so a stream costs a table entry, not a scheduled task
/// (with its allocation and the event loop's task-queue lock) armed and cancelled once or twice.
/// Confined to the connection's event loop (its streams' loop too).
final class SharedTimeoutCheck: @unchecked Sendable {
    private let loop: any EventLoop
    /// Each member knows its place here (`sharedTimeoutCheckSlot`): joining and leaving take no
    /// hashing, where a dictionary keyed by object cost every stream ~2.5k instructions.
    private var members: [HTTPConnectionManager] = []
    private var scheduled: Scheduled<Void>?
    private var scheduledAt = NIODeadline.distantFuture

    init(loop: any EventLoop) {
        self.loop = loop
    }

    /// The connection is gone: its wake-up is not left waiting in the event loop's task queue.
    deinit {
        scheduled?.cancel()
    }

    /// `manager` wants to be checked no later than `deadline`.
    func register(_ manager: HTTPConnectionManager, by deadline: NIODeadline) {
        if manager.sharedTimeoutCheckSlot == nil {
            manager.sharedTimeoutCheckSlot = members.count
            members.append(manager)
        }
        guard deadline < scheduledAt else { return }
        scheduled?.cancel()
        scheduledAt = deadline
        scheduled = loop.assumeIsolated().scheduleTask(deadline: deadline) { [weak self] in self?.fire() }
    }

    /// The stream ended: it is not checked again. The wake-up stays armed when the last stream
    /// leaves: the next stream, usually right behind, would arm it again (cancelling and scheduling
    /// a task each take the event loop's task-queue lock), and a check with no one to check is cheap.
    func remove(_ manager: HTTPConnectionManager) {
        guard let slot = manager.sharedTimeoutCheckSlot else { return }
        manager.sharedTimeoutCheckSlot = nil
        let last = members.removeLast()
        guard slot < members.count else { return }
        members[slot] = last
        last.sharedTimeoutCheckSlot = slot
    }

    private func fire() {
        scheduled = nil
        scheduledAt = .distantFuture
        let now = loop.now
        let due = members
        members = []
        for manager in due { manager.sharedTimeoutCheckSlot = nil }
        // Each member acts if due and registers again for its next deadline.
        for manager in due { manager.sharedTimeoutCheckFired(now: now) }
    }
}
