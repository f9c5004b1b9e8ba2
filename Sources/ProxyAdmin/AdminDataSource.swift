import ProxyCore
import ProxyUpstream

/// What the admin endpoints read from the running server. The server implements it; admin never
/// mutates config through it (only log levels, health-check state, counters and shutdown).
public protocol AdminDataSource: Sendable {
    var stats: StatsStore { get }
    /// Refreshes `server.*` gauges before stats are printed.
    func refreshServerStats()
    var clusters: ClusterManager { get }
    /// Listener name and bound address (`127.0.0.1:15001`), in config order.
    var listeners: [(name: String, address: String, host: String, port: Int)] { get }
    /// `/config_dump` as proto3 JSON with Envoy's field names; `resource` and `nameRegex` filter it;
    /// `includeEDS` adds the endpoints.
    func configDumpJSON(resource: String?, nameRegex: String?, includeEDS: Bool) throws -> String
    /// `/server_info` as JSON.
    func serverInfoJSON() throws -> String
    /// `/certs` as JSON: every TLS context's CA and certificate.
    func certsJSON() throws -> String
    /// LIVE, DRAINING, PRE_INITIALIZING or INITIALIZING.
    var state: String { get }
    var healthCheckFailed: Bool { get }
    func setHealthCheckFailed(_ failed: Bool)
    /// Log levels by logger name.
    func logLevels() -> [(name: String, level: String)]
    /// Sets every logger (`paths == nil`) or the named ones; returns false for an unknown name or level.
    func setLogLevel(_ level: String?, paths: [(String, String)]) -> Bool
    func requestShutdown()
    /// Drains every listener's connections and stops accepting (`/drain_listeners`).
    func drainListeners(graceful: Bool, inboundOnly: Bool)
    /// Reopens access log files (`/reopen_logs`, after rotation).
    func reopenLogs()
}
