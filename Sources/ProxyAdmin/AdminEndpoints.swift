import Foundation
import ProxyCore
import ProxyUpstream

/// Envoy's admin endpoints, one function each, answering from an AdminDataSource.
public struct AdminEndpoints: Sendable {
    public let source: any AdminDataSource

    public init(source: any AdminDataSource) {
        self.source = source
    }

    struct Endpoint {
        let path: String
        let help: String
        let mutates: Bool
        let handler: @Sendable (AdminEndpoints, AdminRequest) -> AdminResponse
    }

    static let endpoints: [Endpoint] = [
        Endpoint(path: "/", help: "Admin home page", mutates: false) { $0.help($1) },
        Endpoint(path: "/certs", help: "print certs on machine", mutates: false) { endpoints, _ in
            do {
                return .json(try endpoints.source.certsJSON())
            } catch {
                return AdminResponse(status: 500, body: "cannot list certificates: \(error)\n")
            }
        },
        Endpoint(path: "/clusters", help: "upstream cluster status", mutates: false) { $0.clusters($1) },
        Endpoint(path: "/config_dump", help: "dump current Envoy configs", mutates: false) { $0.configDump($1) },
        Endpoint(path: "/drain_listeners", help: "drain listeners", mutates: true) { endpoints, request in
            endpoints.source.drainListeners(graceful: request.has("graceful"), inboundOnly: request.has("inboundonly"))
            return AdminResponse(body: "OK\n")
        },
        Endpoint(path: "/healthcheck/fail", help: "cause the server to fail health checks", mutates: true) { endpoints, _ in
            endpoints.source.setHealthCheckFailed(true)
            return AdminResponse(body: "OK\n")
        },
        Endpoint(path: "/healthcheck/ok", help: "cause the server to pass health checks", mutates: true) { endpoints, _ in
            endpoints.source.setHealthCheckFailed(false)
            return AdminResponse(body: "OK\n")
        },
        Endpoint(path: "/help", help: "print out list of admin commands", mutates: false) { $0.help($1) },
        Endpoint(path: "/listeners", help: "print listener info", mutates: false) { $0.listeners($1) },
        Endpoint(path: "/logging", help: "query/change logging levels", mutates: true) { $0.logging($1) },
        Endpoint(path: "/memory", help: "print current allocation/heap usage", mutates: false) { _, _ in
            let rss = ProcessMemory.residentBytes()
            return .json("{\n \"allocated\": \"\(rss)\",\n \"heap_size\": \"\(rss)\"\n}\n")
        },
        Endpoint(path: "/quitquitquit", help: "exit the server", mutates: true) { endpoints, _ in
            endpoints.source.requestShutdown()
            return AdminResponse(body: "OK\n")
        },
        Endpoint(path: "/ready", help: "print server state, return 200 if LIVE, otherwise return 503", mutates: false) {
            endpoints, _ in
            let state = endpoints.source.state
            return AdminResponse(status: state == "LIVE" ? 200 : 503, body: state + "\n")
        },
        Endpoint(path: "/reopen_logs", help: "reopen access logs", mutates: true) { endpoints, _ in
            endpoints.source.reopenLogs()
            return AdminResponse(body: "OK\n")
        },
        Endpoint(path: "/reset_counters", help: "reset all counters to zero", mutates: true) { endpoints, _ in
            endpoints.source.stats.resetCounters()
            return AdminResponse(body: "OK\n")
        },
        Endpoint(path: "/runtime", help: "print runtime values", mutates: false) { _, _ in
            .json("{\n \"layers\": [],\n \"entries\": {}\n}\n")
        },
        Endpoint(path: "/server_info", help: "print server version/status information", mutates: false) { endpoints, _ in
            do { return .json(try endpoints.source.serverInfoJSON()) } catch {
                return AdminResponse(status: 500, body: "\(error)\n")
            }
        },
        Endpoint(path: "/stats", help: "print server stats", mutates: false) { $0.stats($1) },
        Endpoint(path: "/stats/prometheus", help: "print server stats in prometheus format", mutates: false) {
            endpoints, request in
            endpoints.source.refreshServerStats()
            let text = StatsFormatter.prometheus(endpoints.source.stats.snapshot(), usedOnly: request.has("usedonly"))
            return AdminResponse(contentType: "text/plain; charset=UTF-8", body: text)
        },
    ]

    public func handle(_ request: AdminRequest) -> AdminResponse {
        guard let endpoint = Self.endpoints.first(where: { $0.path == request.path }) else {
            return AdminResponse(status: 404, body: "invalid path. admin commands are:\n" + helpText())
        }
        if endpoint.mutates, request.method != "POST", !(endpoint.path == "/logging" && request.query.isEmpty) {
            return AdminResponse(status: 405, body: "This endpoint requires POST\n")
        }
        return endpoint.handler(self, request)
    }

    private func helpText() -> String {
        Self.endpoints.map { endpoint in
            "  \(endpoint.path)\(endpoint.mutates ? " (POST)" : ""): \(endpoint.help)\n"
        }.joined()
    }

    func help(_ request: AdminRequest) -> AdminResponse {
        AdminResponse(body: "admin commands are:\n" + helpText())
    }

    func stats(_ request: AdminRequest) -> AdminResponse {
        source.refreshServerStats()
        var options = StatsFormatter.Options(usedOnly: request.has("usedonly"))
        if let filter = request.parameter("filter"), !filter.isEmpty {
            do { options.filter = try StatsFormatter.CompiledFilter(filter) } catch {
                return AdminResponse(status: 400, body: "Invalid regex: \"\(filter)\"\n")
            }
        }
        let snapshot = source.stats.snapshot()
        if request.parameter("format") == "json" {
            return .json(StatsFormatter.json(snapshot, options))
        }
        if request.parameter("format") == "prometheus" {
            return AdminResponse(body: StatsFormatter.prometheus(snapshot, usedOnly: options.usedOnly))
        }
        return AdminResponse(body: StatsFormatter.text(snapshot, options))
    }

    func clusters(_ request: AdminRequest) -> AdminResponse {
        let clusters = source.clusters.ordered
        if request.parameter("format") == "json" {
            return .json(ClustersFormatter.json(clusters))
        }
        return AdminResponse(body: ClustersFormatter.text(clusters))
    }

    func listeners(_ request: AdminRequest) -> AdminResponse {
        let listeners = source.listeners
        if request.parameter("format") == "json" {
            let statuses = listeners.map { listener in
                "{\"name\":\(StatsFormatter.jsonString(listener.name)),\"local_address\":{\"socket_address\":"
                    + "{\"address\":\(StatsFormatter.jsonString(listener.host)),\"port_value\":\(listener.port)}}}"
            }
            return .json("{\"listener_statuses\":[\(statuses.joined(separator: ","))]}")
        }
        return AdminResponse(body: listeners.map { "\($0.name)::\($0.address)\n" }.joined())
    }

    func configDump(_ request: AdminRequest) -> AdminResponse {
        do {
            return .json(try source.configDumpJSON(resource: request.parameter("resource"),
                                                   nameRegex: request.parameter("name_regex"),
                                                   includeEDS: request.has("include_eds")))
        } catch {
            return AdminResponse(status: 400, body: "\(error)\n")
        }
    }

    func logging(_ request: AdminRequest) -> AdminResponse {
        if request.method == "POST", !request.query.isEmpty {
            let level = request.parameter("level")
            var paths: [(String, String)] = []
            if let spec = request.parameter("paths") {
                for item in spec.split(separator: ",") {
                    let pair = item.split(separator: ":")
                    guard pair.count == 2 else { return AdminResponse(status: 404, body: "error: invalid paths\n") }
                    paths.append((String(pair[0]), String(pair[1])))
                }
            }
            var named: [(String, String)] = []
            for (key, value) in request.query where key != "level" && key != "paths" {
                named.append((key, value.isEmpty ? (level ?? "") : value))
            }
            if !source.setLogLevel(paths.isEmpty && named.isEmpty ? level : nil, paths: paths + named) {
                return AdminResponse(status: 404, body: "error: unknown logger or level\n")
            }
        }
        var body = "active loggers:\n"
        for (name, level) in source.logLevels() { body += "  \(name): \(level)\n" }
        return AdminResponse(body: body)
    }
}
