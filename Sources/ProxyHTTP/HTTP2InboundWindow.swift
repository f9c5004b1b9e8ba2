/// A receive window of a downstream HTTP/2 connection, or of one of its streams, that the proxy
/// keeps open: NIO's HTTP/2 state machine tracks the window and reports what is left of it
/// (`NIOHTTP2WindowUpdatedEvent`); this decides when a WINDOW_UPDATE goes out and how large. Bytes
/// received but not yet handed on (a stream whose reads are paused) still count as unread, so a
/// client that outruns the upstream is held back by flow control rather than buffered without bound.
struct HTTP2InboundWindow {
    /// The size the window is kept at.
    private let target: Int
    /// What NIO last reported of the window; nil until it reports.
    private var reported: Int?
    /// Bytes received and not yet handed on.
    private var held = 0
    /// A closed stream's window is not reopened.
    var closed = false

    init(target: Int) {
        self.target = target
    }

    /// NIO reports the window's size; returns the increment to send, if one is due.
    mutating func reported(size: Int) -> Int? {
        reported = size
        return increment()
    }

    /// A DATA frame of `bytes` (flow-controlled length) waits to be handed on.
    mutating func hold(_ bytes: Int) {
        held += bytes
    }

    /// Held bytes were handed on; returns the increment to send, if one is due.
    mutating func handedOn(_ bytes: Int) -> Int? {
        held -= bytes
        return increment()
    }

    /// Back up to the target once no more than half of it is open, so that a client streaming a
    /// body gets one WINDOW_UPDATE per half window rather than one per frame. A window can be
    /// negative (the initial size shrank): the increment is then capped at 2^31 - 1.
    private func increment() -> Int? {
        guard !closed, let reported else { return nil }
        let open = reported + held
        guard open < target else { return nil }
        let increment = target - open
        if open >= 0, increment < open { return nil }
        return min(increment, Int(Int32.max))
    }
}
