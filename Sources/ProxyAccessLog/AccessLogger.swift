import ProxyCore

/// One `access_log` entry: which streams (its filter), how (its format), where (its sink).
public struct AccessLogger: Sendable {
    public let filter: AccessLogFilter?
    public let format: AccessLogFormat
    public let sink: AccessLogSink

    public init(filter: AccessLogFilter?, format: AccessLogFormat, sink: AccessLogSink) {
        self.filter = filter
        self.format = format
        self.sink = sink
    }

    public func log(_ entry: AccessLogEntry) {
        if let filter, !filter.matches(entry, random: { UInt64.random(in: 0 ... .max) }) { return }
        sink.write(format.render(entry))
    }
}
