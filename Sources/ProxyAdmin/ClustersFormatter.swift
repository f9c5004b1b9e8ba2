import ProxyCore
import ProxyUpstream

/// `/clusters` in Envoy's `cluster::host::field::value` text form and its JSON form.
enum ClustersFormatter {
    static func text(_ clusters: [Cluster]) -> String {
        var out = ""
        for cluster in clusters {
            let name = cluster.name
            out += "\(name)::observability_name::\(name)\n"
            for priority in ResourcePriority.allCases {
                let limits = cluster.resources(priority).thresholds
                let field = "\(name)::\(priority.statName)_priority::"
                out += field + "max_connections::\(limits.maxConnections)\n"
                out += field + "max_pending_requests::\(limits.maxPendingRequests)\n"
                out += field + "max_requests::\(limits.maxRequests)\n"
                out += field + "max_retries::\(limits.maxRetries)\n"
            }
            out += "\(name)::added_via_api::\(cluster.addedViaAPI)\n"
            for host in cluster.hosts {
                let prefix = "\(name)::\(host.addressDescription)::"
                let stats = host.stats
                out += prefix + "cx_active::\(stats.cxActive.load(ordering: .relaxed))\n"
                out += prefix + "cx_connect_fail::\(stats.cxConnectFail.load(ordering: .relaxed))\n"
                out += prefix + "cx_total::\(stats.cxTotal.load(ordering: .relaxed))\n"
                out += prefix + "rq_active::\(stats.rqActive.load(ordering: .relaxed))\n"
                out += prefix + "rq_error::\(stats.rqError.load(ordering: .relaxed))\n"
                out += prefix + "rq_pending_active::\(stats.rqPendingActive.load(ordering: .relaxed))\n"
                out += prefix + "rq_success::\(stats.rqSuccess.load(ordering: .relaxed))\n"
                out += prefix + "rq_timeout::\(stats.rqTimeout.load(ordering: .relaxed))\n"
                out += prefix + "rq_total::\(stats.rqTotal.load(ordering: .relaxed))\n"
                out += prefix + "hostname::\(host.hostname)\n"
                var flags = ""
                if cluster.healthChecker != nil, host.health.failedActiveHealthCheck { flags += "/failed_active_hc" }
                if host.outlier.isEjected(at: .now()) { flags += "/failed_outlier_check" }
                if host.failedEDSHealth { flags += "/failed_eds_health" }
                out += prefix + "health_flags::\(flags.isEmpty ? "healthy" : flags)\n"
                out += prefix + "weight::\(host.weight)\n"
                out += prefix + "region::\(host.locality.region)\n" + prefix + "zone::\(host.locality.zone)\n"
                out += prefix + "sub_zone::\(host.locality.subZone)\n"
                out += prefix + "canary::false\n"
                out += prefix + "priority::\(host.priority)\n"
                out += prefix + "success_rate::-1\n"
                out += prefix + "local_origin_success_rate::-1\n"
            }
        }
        return out
    }

    static func json(_ clusters: [Cluster]) -> String {
        let statuses = clusters.map { cluster -> String in
            let hosts = cluster.hosts.map { host -> String in
                let stats = host.stats
                let counters: [(String, UInt64)] = [
                    ("cx_connect_fail", stats.cxConnectFail.load(ordering: .relaxed)),
                    ("cx_total", stats.cxTotal.load(ordering: .relaxed)),
                    ("rq_error", stats.rqError.load(ordering: .relaxed)),
                    ("rq_success", stats.rqSuccess.load(ordering: .relaxed)),
                    ("rq_timeout", stats.rqTimeout.load(ordering: .relaxed)),
                    ("rq_total", stats.rqTotal.load(ordering: .relaxed)),
                ]
                let gauges: [(String, Int64)] = [
                    ("cx_active", stats.cxActive.load(ordering: .relaxed)),
                    ("rq_active", stats.rqActive.load(ordering: .relaxed)),
                    ("rq_pending_active", stats.rqPendingActive.load(ordering: .relaxed)),
                ]
                let statJSON = counters.map { "{\"name\":\"\($0.0)\",\"value\":\"\($0.1)\"}" }
                    + gauges.map { "{\"name\":\"\($0.0)\",\"type\":\"GAUGE\",\"value\":\"\($0.1)\"}" }
                return "{\"address\":{\"socket_address\":{\"address\":\(StatsFormatter.jsonString(host.address)),"
                    + "\"port_value\":\(host.port)}},\"stats\":[\(statJSON.joined(separator: ","))],"
                    + "\"health_status\":{\"eds_health_status\":\"\(host.edsHealthStatus)\"},\"weight\":\(host.weight),"
                    + (host.hostname.isEmpty ? "" : "\"hostname\":\(StatsFormatter.jsonString(host.hostname)),")
                    + (host.priority == 0 ? "" : "\"priority\":\(host.priority),")
                    + "\"locality\":\(localityJSON(host.locality))}"
            }
            let thresholds = ResourcePriority.allCases.map { priority in
                let limits = cluster.resources(priority).thresholds
                return (priority == .high ? "{\"priority\":\"HIGH\"," : "{") + "\"max_connections\":\(limits.maxConnections),"
                    + "\"max_pending_requests\":\(limits.maxPendingRequests),\"max_requests\":\(limits.maxRequests),"
                    + "\"max_retries\":\(limits.maxRetries)}"
            }
            return "{\"name\":\(StatsFormatter.jsonString(cluster.name)),\"observability_name\":"
                + "\(StatsFormatter.jsonString(cluster.name)),\"circuit_breakers\":{\"thresholds\":["
                + "\(thresholds.joined(separator: ","))]},\"added_via_api\":\(cluster.addedViaAPI),"
                + "\"host_statuses\":[\(hosts.joined(separator: ","))]}"
        }
        return "{\"cluster_statuses\":[\(statuses.joined(separator: ","))]}"
    }

    /// The locality's non-empty fields, as proto3 JSON prints them.
    static func localityJSON(_ locality: Host.Locality) -> String {
        let fields = [("region", locality.region), ("zone", locality.zone), ("sub_zone", locality.subZone)]
            .filter { !$0.1.isEmpty }
            .map { "\"\($0.0)\":\(StatsFormatter.jsonString($0.1))" }
        return "{" + fields.joined(separator: ",") + "}"
    }
}
