import Foundation
import Logging
import Synchronization

/// Envoy-style logging: named loggers whose levels `/logging` changes at run time, printed as
/// `[time][pid][level][logger] message` on stderr.
public final class LogLevels: Sendable {
    public static let shared = LogLevels()

    /// Envoy's logger names (a subset), so `/logging?paths=upstream:debug` works as users expect.
    public static let loggerNames = ["admin", "config", "connection", "conn_handler", "dns", "http", "init",
                                     "main", "misc", "pool", "router", "runtime", "upstream"]

    static let envoyNames: [(String, Logger.Level)] = [
        ("trace", .trace), ("debug", .debug), ("info", .info), ("warning", .warning), ("warn", .warning),
        ("error", .error), ("critical", .critical), ("off", .critical),
    ]

    private final class Cell: Sendable {
        let code = Atomic<UInt8>(LogLevels.code(.info))
    }

    private let levels: [String: Cell]

    private init() {
        var levels: [String: Cell] = [:]
        for name in Self.loggerNames { levels[name] = Cell() }
        self.levels = levels
    }

    public static func parse(_ name: String) -> Logger.Level? {
        envoyNames.first { $0.0 == name.lowercased() }?.1
    }

    static func code(_ level: Logger.Level) -> UInt8 { UInt8(Logger.Level.allCases.firstIndex(of: level)!) }
    static func level(_ code: UInt8) -> Logger.Level { Logger.Level.allCases[Int(code)] }

    public func level(of logger: String) -> Logger.Level {
        levels[logger].map { Self.level($0.code.load(ordering: .relaxed)) } ?? .info
    }

    public func setAll(_ level: Logger.Level) {
        for cell in levels.values { cell.code.store(Self.code(level), ordering: .relaxed) }
    }

    @discardableResult
    public func set(_ logger: String, _ level: Logger.Level) -> Bool {
        guard let cell = levels[logger] else { return false }
        cell.code.store(Self.code(level), ordering: .relaxed)
        return true
    }

    public func all() -> [(name: String, level: String)] {
        Self.loggerNames.map { ($0, Self.envoyName(level(of: $0))) }
    }

    static func envoyName(_ level: Logger.Level) -> String {
        switch level {
        case .trace: "trace"
        case .debug: "debug"
        case .info, .notice: "info"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    /// Installs the handler once per process.
    public static func bootstrap() {
        LoggingSystem.bootstrap { label in EnvoyLogHandler(label: label) }
    }
}

/// A swift-log handler whose level is the named logger's current level.
struct EnvoyLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]

    var logLevel: Logger.Level {
        get { LogLevels.shared.level(of: label) }
        set { LogLevels.shared.set(label, newValue) }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        var now = timeval()
        gettimeofday(&now, nil)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let stamp = String(format: "%04d-%02d-%02d %02d:%02d:%02d.%03d", parts.tm_year + 1900, parts.tm_mon + 1,
                           parts.tm_mday, parts.tm_hour, parts.tm_min, parts.tm_sec, Int(now.tv_usec / 1000))
        let text = "[\(stamp)][\(getpid())][\(LogLevels.envoyName(level))][\(label)] \(message)\n"
        FileHandle.standardError.write(Data(text.utf8))
    }
}
