import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where one access log path is written. Event loops only append to a buffer (one short,
/// uncontended lock, as Envoy's file logger takes); a background queue writes the buffer out every
/// flush interval or once 64 KiB are waiting, so a slow disk never stalls a request.
public final class AccessLogSink: @unchecked Sendable {
    public let path: String
    private let pending = Mutex<[UInt8]>([])
    private let queue: DispatchQueue
    /// Confined to `queue`.
    private var fd: Int32
    private var timer: DispatchSourceTimer?
    private static let flushThreshold = 64 * 1024

    init(path: String, flushInterval: Duration) throws {
        self.path = path
        self.queue = DispatchQueue(label: "access-log \(path)")
        self.fd = try Self.open(path)
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let interval = DispatchTimeInterval.milliseconds(Int(flushInterval.components.seconds * 1000
            + flushInterval.components.attoseconds / 1_000_000_000_000_000))
        timer.schedule(deadline: .now() + interval, repeating: interval)
        timer.setEventHandler { [weak self] in self?.flushNow() }
        timer.resume()
        self.timer = timer
    }

    private static func open(_ path: String) throws -> Int32 {
        switch path {
        case "/dev/stdout": return 1
        case "/dev/stderr": return 2
        default:
            let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw AccessLogFormatError(description: "unable to open file '\(path)': \(String(cString: strerror(errno)))")
            }
            return fd
        }
    }

    /// Appends one formatted line; called on event loops.
    public func write(_ line: String) {
        let full = pending.withLock { buffer in
            buffer.append(contentsOf: line.utf8)
            return buffer.count >= Self.flushThreshold
        }
        if full { queue.async { [self] in flushNow() } }
    }

    /// Writes what is buffered; returns when it is written (tests, shutdown).
    public func flush() {
        queue.sync { flushNow() }
    }

    /// Reopens the file (after log rotation moved it away), keeping what is buffered.
    public func reopen() {
        queue.sync {
            flushNow()
            guard fd > 2, let reopened = try? Self.open(path) else { return }
            close(fd)
            fd = reopened
        }
    }

    private func flushNow() {
        let bytes = pending.withLock { buffer -> [UInt8] in
            let taken = buffer
            buffer.removeAll(keepingCapacity: true)
            return taken
        }
        guard !bytes.isEmpty else { return }
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return  // the disk refuses: drop the batch rather than block or spin
                }
                offset += written
            }
        }
    }
}

/// Every access log sink of the process, by path: listeners that log to one file share its sink, and
/// `/reopen_logs` reaches all of them.
public final class AccessLogSinks: Sendable {
    public static let shared = AccessLogSinks()
    private let sinks = Mutex<[String: AccessLogSink]>([:])
    /// `--file-flush-interval-msec`; Envoy's default is 10 s.
    private let interval = Mutex<Duration>(.seconds(10))

    public var flushInterval: Duration {
        get { interval.withLock { $0 } }
        set { interval.withLock { $0 = newValue } }
    }

    public func sink(path: String) throws -> AccessLogSink {
        let flushInterval = self.flushInterval
        return try sinks.withLock { sinks in
            if let existing = sinks[path] { return existing }
            let sink = try AccessLogSink(path: path, flushInterval: flushInterval)
            sinks[path] = sink
            return sink
        }
    }

    public func reopenAll() {
        for sink in sinks.withLock({ Array($0.values) }) { sink.reopen() }
    }

    public func flushAll() {
        for sink in sinks.withLock({ Array($0.values) }) { sink.flush() }
    }
}
