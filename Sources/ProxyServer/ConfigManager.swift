import Foundation
import Logging
import NIOCore
import ProxyCore
import ProxyHTTP
import ProxyRouting
import ProxyTLS
import ProxyUpstream
import ProxyXDS
import SwiftProtobuf
import Synchronization
import XDSAPI
import XDSResource

/// Owns the running config: static resources from the bootstrap and dynamic ones from xDS. Applies
/// xDS updates (one at a time, from the ADS stream) by building new immutable values and publishing
/// them: clusters through one ClusterManager holder, listeners through their connection-manager
/// holders. What was serving keeps serving when an update is rejected.
final class ConfigManager: XDSSubscriber, @unchecked Sendable {
    struct DynamicCluster {
        var cluster: Cluster
        var version: String
        var lastUpdated: Date
        var dnsRefresh: Task<Void, Never>?
    }

    struct DynamicRoute {
        var table: RouteTable
        var config: Envoy_Config_Route_V3_RouteConfiguration
        var version: String
        var lastUpdated: Date
    }

    /// What admin reads: an immutable view published after every change.
    struct View: Sendable {
        var clusters = ClusterManager([])
        var listeners: [ListenerRuntime] = []
        var dynamicClusters: [String: (version: String, lastUpdated: Date)] = [:]
        var warmingClusters: [Cluster] = []
        var routes: [String: (config: Envoy_Config_Route_V3_RouteConfiguration, version: String, lastUpdated: Date)] = [:]
        var staticClusterNames: Set<String> = []
        var staticListenerNames: Set<String> = []
        var failures: [String: [String: Envoy_Admin_V3_UpdateFailureState]] = [:]
        var assignments: [String: Envoy_Config_Endpoint_V3_ClusterLoadAssignment] = [:]
        var assignmentVersion = ""
        var staticSecrets: [String: SecretProto] = [:]
        var dynamicSecrets: [String: DynamicSecret] = [:]
    }

    struct DynamicSecret: Sendable {
        var secret: SecretProto
        var version: String
        var lastUpdated: Date
    }

    private let store: StatsStore
    private let loops: [any EventLoop]
    private let group: (any EventLoopGroup)?
    private let resolver: any DNSResolver
    private let logger = Logger(label: "config")

    private let staticClusters: [Cluster]
    private var dynamicClusters: [String: DynamicCluster] = [:]
    /// New or changed EDS clusters waiting for their endpoints, with the time they may wait
    /// (`initial_fetch_timeout`); a changed cluster's previous version serves meanwhile.
    private var warmingClusters: [String: (entry: DynamicCluster, deadline: Date?)] = [:]
    private var assignments: [String: Envoy_Config_Endpoint_V3_ClusterLoadAssignment] = [:]
    private var listeners: [String: ListenerRuntime] = [:]
    private var listenerOrder: [String] = []
    private let staticListenerNames: Set<String>
    private var routes: [String: DynamicRoute] = [:]
    private(set) var receivedTypes: Set<String> = []
    /// Resources the last update of their type rejected, by type URL and name, for /config_dump's error_state.
    private var failures: [String: [String: Envoy_Admin_V3_UpdateFailureState]] = [:]
    private var assignmentVersion = ""
    /// `static_resources.secrets`, and secrets from SDS over ADS.
    private let staticSecrets: [String: SecretProto]
    private var dynamicSecrets: [String: DynamicSecret] = [:]
    /// Secrets this proxy makes itself (the CSR-certified workload certificate): never asked of SDS.
    private let localSecretNames: Set<String>
    /// Secrets from SDS files (`path_config_source`).
    private var fileSecrets = FileSecrets()

    let clusterManager: SnapshotHolder<ClusterManager>
    private let published = Mutex(View())
    private let stats: XDSStats
    /// Called whenever every listener is warm after both CDS and LDS arrived (the initial fetch).
    var onInitialFetchDone: (@Sendable () -> Void)?

    /// How long connections of a changed listener may drain (`--drain-time-s`).
    private let drainTime: TimeAmount
    /// `cluster_manager.local_cluster_name` and the node's locality, for zone-aware routing.
    private let localZone: LocalZone?

    init(staticClusters: [Cluster], staticListeners: [ListenerRuntime], store: StatsStore, loops: [any EventLoop],
         group: (any EventLoopGroup)?, resolver: any DNSResolver, staticSecrets: [String: SecretProto] = [:],
         localSecretNames: Set<String> = [], drainTime: TimeAmount = .seconds(600), localZone: LocalZone? = nil) {
        self.localZone = localZone
        self.localSecretNames = localSecretNames
        self.drainTime = drainTime
        self.store = store
        self.loops = loops
        self.group = group
        self.staticSecrets = staticSecrets
        self.resolver = resolver
        self.staticClusters = staticClusters
        self.staticListenerNames = Set(staticListeners.map(\.name))
        self.clusterManager = SnapshotHolder(ClusterManager(staticClusters))
        localZone?.update(from: clusterManager.load())
        self.stats = XDSStats(store: store)
        for listener in staticListeners {
            listeners[listener.name] = listener
            listenerOrder.append(listener.name)
        }
        // Static listeners and clusters whose secrets come from files are warm before they bind.
        _ = fileSecrets.reload(secretFiles)
        let current = secrets
        for cluster in staticClusters { try? cluster.transportSocket?.refresh(secrets: current) }
        for listener in staticListeners { _ = listener.refreshTLS(secrets: current) }
        syncHealthChecks()
        refreshListeners()
        publish()
    }

    /// The SDS files the TLS contexts of listeners and clusters name.
    private var secretFiles: Set<String> {
        let clusters = clusterManager.load().ordered + warmingClusters.values.map(\.entry.cluster)
        let references = allListeners.flatMap(\.secretReferences)
            + clusters.flatMap { $0.transportSocket?.spec.secretReferences ?? [] }
        return Set(references.compactMap(\.file))
    }

    var hasSecretFiles: Bool { !secretFiles.isEmpty }

    /// Re-reads SDS files whose bytes changed; a changed secret rebuilds the TLS contexts naming it
    /// (new handshakes use it; open connections are left alone).
    func reloadSecretFiles() async {
        await queue.run { [self] in
            let (changed, errors) = fileSecrets.reload(secretFiles)
            for error in errors { logger.warning("\(error)") }
            guard changed else { return }
            for error in await refreshTLS() { logger.warning("\(error)") }
            publish()
            checkInitialFetch()
        }
    }

    var view: View { published.withLock { $0 } }

    var allListeners: [ListenerRuntime] { listenerOrder.compactMap { listeners[$0] } }

    func connectionChanged(_ connected: Bool) {
        stats.connectedState.set(connected ? 1 : 0)
    }

    // MARK: applying xDS

    /// Serialises updates from the ADS stream with warming timeouts.
    private let queue = SerialQueue()

    func apply(typeURL: String, resources: [Google_Protobuf_Any], version: String) async -> XDSApplyResult {
        await queue.run { [self] in await applyInOrder(typeURL: typeURL, resources: resources, version: version) }
    }

    private func applyInOrder(typeURL: String, resources: [Google_Protobuf_Any], version: String) async -> XDSApplyResult {
        receivedTypes.insert(typeURL)
        failures[typeURL] = [:]
        promoteWarmClusters(now: Date())
        let result: XDSApplyResult
        switch typeURL {
        case XDSTypes.cluster: result = applyClusters(resources, version: version)
        case XDSTypes.endpoint: result = applyAssignments(resources, version: version)
        case XDSTypes.listener: result = await applyListeners(resources, version: version)
        case XDSTypes.route: result = await applyRoutes(resources, version: version)
        case XDSTypes.secret: result = await applySecrets(resources, version: version)
        default: result = XDSApplyResult(errorMessage: "meshproxy does not handle \(typeURL)")
        }
        publish()
        checkInitialFetch()
        return result
    }

    private func applyClusters(_ resources: [Google_Protobuf_Any], version: String) -> XDSApplyResult {
        stats.cdsUpdateAttempt.increment()
        var errors: [String] = []
        var seen = Set<String>()
        let staticNames = Set(staticClusters.map(\.name))
        for resource in resources {
            let config: Envoy_Config_Cluster_V3_Cluster
            do {
                config = try Envoy_Config_Cluster_V3_Cluster(unpackingAny: resource)
            } catch {
                errors.append("cannot decode a cluster: \(error)")
                continue
            }
            seen.insert(config.name)
            if staticNames.contains(config.name) {
                errors.append("\(config.name): a static cluster cannot be replaced by CDS")
                continue
            }
            if var existing = dynamicClusters[config.name], existing.cluster.config == config {
                existing.version = version
                dynamicClusters[config.name] = existing
                warmingClusters[config.name] = nil
                continue
            }
            if warmingClusters[config.name]?.entry.cluster.config == config { continue }
            do {
                let cluster = try Cluster.make(config, stats: store, addedViaAPI: true, loops: loops, secrets: secrets,
                                               localZone: localZone)
                if cluster.discoveryType == .eds {
                    if let assignment = assignments[cluster.edsServiceName] {
                        try? cluster.applyAssignment(assignment)
                    } else {
                        // Warming, as in Envoy: usable once its endpoints arrive or its fetch times out.
                        let timeout = config.edsClusterConfig.edsConfig.hasInitialFetchTimeout
                            ? config.edsClusterConfig.edsConfig.initialFetchTimeout.milliseconds : 15_000
                        warmingClusters[config.name] = (DynamicCluster(cluster: cluster, version: version, lastUpdated: Date()),
                                                        timeout > 0 ? Date().addingTimeInterval(Double(timeout) / 1000) : nil)
                        if timeout > 0 { scheduleWarmingCheck(after: timeout) }
                        continue
                    }
                }
                warmingClusters[config.name] = nil
                let old = dynamicClusters[config.name]
                old?.dnsRefresh?.cancel()
                old?.cluster.closeIdleConnections()
                var entry = DynamicCluster(cluster: cluster, version: version, lastUpdated: Date())
                if cluster.discoveryType == .strictDNS || cluster.discoveryType == .logicalDNS {
                    let resolver = self.resolver
                    Task { await cluster.refreshDNS(using: resolver) }
                    entry.dnsRefresh = cluster.startDNSRefresh(using: resolver)
                }
                dynamicClusters[config.name] = entry
            } catch {
                errors.append("\(config.name): \(error)")
                recordFailure(XDSTypes.cluster, name: config.name, resource: resource, reason: "\(error)", version: version)
            }
        }
        for name in warmingClusters.keys where !seen.contains(name) { warmingClusters[name] = nil }
        for name in dynamicClusters.keys where !seen.contains(name) {
            // Removed: idle connections close now; requests in flight finish on the old snapshot.
            dynamicClusters[name]?.dnsRefresh?.cancel()
            dynamicClusters[name]?.cluster.closeIdleConnections()
            dynamicClusters[name] = nil
        }
        publishClusters()
        let edsNames = Set((clusterManager.load().ordered + warmingClusters.values.map(\.entry.cluster))
            .filter { $0.discoveryType == .eds }.map(\.edsServiceName))
        if errors.isEmpty { stats.cdsVersion.set(XDSStats.versionHash(version)) }
        return finish(errors, kind: "cluster", success: stats.cdsUpdateSuccess, rejected: stats.cdsUpdateRejected,
                      subscriptions: [XDSTypes.endpoint: edsNames, XDSTypes.secret: dynamicSecretNames])
    }

    private func publishClusters() {
        clusterManager.store(ClusterManager(staticClusters + dynamicClusters.keys.sorted().map { dynamicClusters[$0]!.cluster }))
        localZone?.update(from: clusterManager.load())
        syncHealthChecks()
        refreshListeners()
    }

    /// Clusters being health checked, so a replaced or removed cluster's checks stop.
    private var healthChecked: [ObjectIdentifier: Cluster] = [:]

    /// Starts health checks of clusters that came into service and stops those of clusters that left.
    private func syncHealthChecks() {
        let serving = Dictionary(uniqueKeysWithValues: clusterManager.load().ordered
            .filter(\.hasBackgroundChecks).map { (ObjectIdentifier($0), $0) })
        for (id, cluster) in healthChecked where serving[id] == nil { cluster.stopHealthChecks() }
        for (id, cluster) in serving where healthChecked[id] == nil { cluster.startHealthChecks() }
        healthChecked = serving
    }

    /// Envoy's `/drain_listeners`: open connections drain (HTTP/1.1 `connection: close`, HTTP/2
    /// GOAWAY) and the listeners stop accepting, at once or, with `graceful`, after the drain time.
    /// `inboundOnly` leaves listeners whose traffic_direction is not INBOUND alone.
    func drainListeners(graceful: Bool, inboundOnly: Bool) {
        Task { [self] in
            let chosen = await queue.run { [self] in
                allListeners.filter { !inboundOnly || $0.config.trafficDirection == .inbound }
            }
            for listener in chosen { listener.connections.drainAll(closeAfter: listener.drainTime) }
            if graceful, let longest = chosen.map(\.drainTime).max() {
                try? await Task.sleep(for: .nanoseconds(longest.nanoseconds))
            }
            await queue.run { [self] in
                for listener in chosen where listeners[listener.name] === listener { await listener.stopAccepting() }
            }
        }
    }

    /// Looks at warming clusters again when the first of them may have timed out.
    private func scheduleWarmingCheck(after milliseconds: Int64) {
        Task { [self] in
            try? await Task.sleep(for: .milliseconds(milliseconds + 1))
            await queue.run { [self] in
                promoteWarmClusters(now: Date())
                publish()
                checkInitialFetch()
            }
        }
    }

    /// Moves warming clusters that have their endpoints, or whose fetch timed out, into service.
    private func promoteWarmClusters(now: Date) {
        var promoted = false
        for (name, warming) in warmingClusters {
            let cluster = warming.entry.cluster
            let timedOut = warming.deadline.map { now >= $0 } ?? false
            guard let assignment = assignments[cluster.edsServiceName] else {
                guard timedOut else { continue }
                logger.warning("cluster \(name): no endpoints within initial_fetch_timeout; serving it without hosts")
                cluster.stats.assignmentTimeoutReceived.increment()
                dynamicClusters[name]?.cluster.closeIdleConnections()
                dynamicClusters[name] = warming.entry
                warmingClusters[name] = nil
                promoted = true
                continue
            }
            try? cluster.applyAssignment(assignment)
            dynamicClusters[name]?.cluster.closeIdleConnections()
            dynamicClusters[name] = warming.entry
            warmingClusters[name] = nil
            promoted = true
        }
        if promoted { publishClusters() }
    }

    private func applyAssignments(_ resources: [Google_Protobuf_Any], version: String) -> XDSApplyResult {
        assignmentVersion = version
        defer { promoteWarmClusters(now: Date()) }
        var errors: [String] = []
        let clusters = clusterManager.load().ordered
        for resource in resources {
            guard let assignment = try? Envoy_Config_Endpoint_V3_ClusterLoadAssignment(unpackingAny: resource) else {
                errors.append("cannot decode a ClusterLoadAssignment")
                continue
            }
            assignments[assignment.clusterName] = assignment
            for cluster in clusters where cluster.discoveryType == .eds && cluster.edsServiceName == assignment.clusterName {
                do {
                    try cluster.applyAssignment(assignment)
                } catch {
                    errors.append("\(assignment.clusterName): \(error)")
                }
            }
        }
        return XDSApplyResult(errorMessage: errors.isEmpty ? nil : "Error applying endpoints: " + errors.joined(separator: "; "))
    }

    private func applyListeners(_ resources: [Google_Protobuf_Any], version: String) async -> XDSApplyResult {
        stats.ldsUpdateAttempt.increment()
        var errors: [String] = []
        var seen = Set<String>()
        for resource in resources {
            let config: Envoy_Config_Listener_V3_Listener
            do {
                config = try Envoy_Config_Listener_V3_Listener(unpackingAny: resource)
            } catch {
                errors.append("cannot decode a listener: \(error)")
                continue
            }
            seen.insert(config.name)
            if staticListenerNames.contains(config.name) {
                errors.append("\(config.name): a static listener cannot be replaced by LDS")
                continue
            }
            if let existing = listeners[config.name], existing.config == config {
                existing.versionInfo = version
                continue
            }
            do {
                let existing = listeners[config.name]
                let parsed = try ListenerRuntime.parse(config, path: config.name, store: store,
                                                       reuse: existing.map { $0.chains + ($0.defaultChain.map { [$0] } ?? []) } ?? [],
                                                       secrets: secrets)
                if let existing, existing.host == parsed.host, existing.port == parsed.port {
                    existing.update(config, parsed: parsed)
                    existing.versionInfo = version
                    existing.lastUpdated = Date()
                    existing.refresh(clusters: clusterManager.load(), routes: routeTables)
                    continue
                }
                let runtime = try ListenerRuntime(config, path: config.name, store: store, secrets: secrets)
                runtime.drainTime = drainTime
                runtime.versionInfo = version
                if let old = listeners[config.name] { await old.close() }
                runtime.refresh(clusters: clusterManager.load(), routes: routeTables)
                if runtime.isWarm, let group { try await runtime.bind(group: group) }
                if listeners[config.name] == nil { listenerOrder.append(config.name) }
                listeners[config.name] = runtime
            } catch {
                errors.append("\(config.name): \(error)")
                recordFailure(XDSTypes.listener, name: config.name, resource: resource, reason: "\(error)", version: version)
            }
        }
        for name in listenerOrder where !staticListenerNames.contains(name) && !seen.contains(name) {
            await listeners[name]?.close()
            listeners[name] = nil
        }
        listenerOrder.removeAll { listeners[$0] == nil }
        let rdsNames = Set(listeners.values.flatMap { $0.templates.compactMap(\.rdsName) })
        if errors.isEmpty { stats.ldsVersion.set(XDSStats.versionHash(version)) }
        return finish(errors, kind: "listener", success: stats.ldsUpdateSuccess, rejected: stats.ldsUpdateRejected,
                      subscriptions: [XDSTypes.route: rdsNames, XDSTypes.secret: dynamicSecretNames])
    }

    private func applyRoutes(_ resources: [Google_Protobuf_Any], version: String) async -> XDSApplyResult {
        var errors: [String] = []
        for resource in resources {
            guard let config = try? Envoy_Config_Route_V3_RouteConfiguration(unpackingAny: resource) else {
                errors.append("cannot decode a RouteConfiguration")
                continue
            }
            countRDS(config.name, "update_attempt")
            if let existing = routes[config.name], existing.config == config {
                countRDS(config.name, "update_success")
                continue
            }
            do {
                let table = try RouteTable(config, filterConfigs: HTTPFilterRegistry.perFilterConfigs(store: store))
                routes[config.name] = DynamicRoute(table: table, config: config, version: version, lastUpdated: Date())
                countRDS(config.name, "update_success")
                countRDS(config.name, "config_reload")
            } catch {
                errors.append("\(config.name): \(error)")
                countRDS(config.name, "update_rejected")
                recordFailure(XDSTypes.route, name: config.name, resource: resource, reason: "\(error)", version: version)
            }
        }
        errors += await refreshAndBindListeners()
        return XDSApplyResult(errorMessage: errors.isEmpty ? nil : "Error updating route configuration(s) "
                                  + errors.joined(separator: "; "))
    }

    private var routeTables: [String: RouteTable] { routes.mapValues(\.table) }

    /// Every secret a TLS context can use now: static ones, and what SDS delivered.
    private var secrets: [String: SecretProto] {
        staticSecrets.merging(dynamicSecrets.mapValues(\.secret)) { fromStatic, _ in fromStatic }
            .merging(fileSecrets.secrets) { other, _ in other }
    }

    /// The secrets listeners and clusters ask SDS for.
    private var dynamicSecretNames: Set<String> {
        let listenerNames = allListeners.flatMap(\.secretReferences)
        let clusters = clusterManager.load().ordered + warmingClusters.values.map(\.entry.cluster)
        let clusterNames = clusters.flatMap { $0.transportSocket?.spec.secretReferences ?? [] }
        return Set((listenerNames + clusterNames).filter { $0.dynamic && $0.file == nil }.map(\.name))
            .subtracting(localSecretNames)
    }

    /// Installs a secret this proxy made itself, as if SDS had delivered it: TLS contexts naming it are
    /// rebuilt for new handshakes, and listeners waiting for it warm up.
    func installLocalSecret(_ secret: SecretProto) async -> [String] {
        await queue.run { [self] in
            dynamicSecrets[secret.name] = DynamicSecret(secret: secret, version: "local", lastUpdated: Date())
            let errors = await refreshTLS()
            publish()
            checkInitialFetch()
            return errors
        }
    }

    /// Rebuilds the TLS contexts of clusters and listeners from the secrets known now; binds listeners
    /// that were only waiting for theirs.
    private func refreshTLS() async -> [String] {
        var errors: [String] = []
        let current = secrets
        for cluster in clusterManager.load().ordered + warmingClusters.values.map(\.entry.cluster) {
            do {
                try cluster.transportSocket?.refresh(secrets: current)
            } catch {
                errors.append("cluster \(cluster.name): \(error)")
            }
        }
        for listener in allListeners { errors += listener.refreshTLS(secrets: current) }
        return errors + (await refreshAndBindListeners())
    }

    /// Recompiles every listener and binds the ones that just became warm (their routes or secrets arrived).
    private func refreshAndBindListeners() async -> [String] {
        var errors: [String] = []
        let clusters = clusterManager.load()
        let tables = routeTables
        for listener in allListeners {
            let wasWarm = listener.isWarm
            listener.refresh(clusters: clusters, routes: tables)
            if !wasWarm, listener.isWarm, let group {
                do {
                    try await listener.bind(group: group)
                } catch {
                    errors.append("\(listener.name): \(error)")
                }
            }
        }
        return errors
    }

    /// SDS: each secret is checked on its own (a bad key/certificate pair is refused with the
    /// reason and the previous version keeps serving), then every TLS context naming a changed
    /// secret is rebuilt; new handshakes use it, open connections are left alone.
    private func applySecrets(_ resources: [Google_Protobuf_Any], version: String) async -> XDSApplyResult {
        var errors: [String] = []
        var seen = Set<String>()
        for resource in resources {
            let secret: SecretProto
            do {
                secret = try SecretProto(unpackingAny: resource)
            } catch {
                errors.append("cannot decode a secret: \(error)")
                continue
            }
            seen.insert(secret.name)
            if localSecretNames.contains(secret.name) {
                errors.append("\(secret.name): this proxy makes that secret itself (--workload-cert-from-csr)")
                continue
            }
            if dynamicSecrets[secret.name]?.secret == secret { continue }
            do {
                try SecretCheck.validate(secret)
                dynamicSecrets[secret.name] = DynamicSecret(secret: secret, version: version, lastUpdated: Date())
            } catch {
                errors.append("\(secret.name): \(error)")
                recordFailure(XDSTypes.secret, name: secret.name, resource: resource, reason: "\(error)", version: version)
            }
        }
        for name in dynamicSecrets.keys where !seen.contains(name) && !dynamicSecretNames.contains(name)
            && !localSecretNames.contains(name) {
            dynamicSecrets[name] = nil
        }
        errors += await refreshTLS()
        return XDSApplyResult(errorMessage: errors.isEmpty ? nil : "Error adding/updating secret(s) "
                                  + errors.joined(separator: "; "))
    }

    /// `http.<stat_prefix>.rds.<route_config>.<stat>` for every connection manager that uses the route config.
    private func countRDS(_ routeName: String, _ stat: String) {
        for template in allListeners.flatMap(\.templates) where template.rdsName == routeName {
            let prefix = template.statPrefix
            store.counter("http.\(prefix).rds.\(routeName).\(stat)",
                          StatTags(extractedName: "http.rds." + stat,
                                   tags: [StatTags.Tag("envoy_http_conn_manager_prefix", prefix),
                                          StatTags.Tag("envoy_rds_route_config", routeName)])).increment()
        }
    }

    /// Keeps what was rejected, why and when, as Envoy's `error_state` shows it.
    private func recordFailure(_ typeURL: String, name: String, resource: Google_Protobuf_Any, reason: String,
                               version: String) {
        var state = Envoy_Admin_V3_UpdateFailureState()
        state.failedConfiguration = resource
        state.details = reason
        state.versionInfo = version
        state.lastUpdateAttempt = Google_Protobuf_Timestamp(date: Date())
        failures[typeURL, default: [:]][name] = state
    }

    private func refreshListeners() {
        let clusters = clusterManager.load()
        let tables = routeTables
        for listener in allListeners { listener.refresh(clusters: clusters, routes: tables) }
    }

    private func finish(_ errors: [String], kind: String, success: Counter, rejected: Counter,
                        subscriptions: [String: Set<String>]) -> XDSApplyResult {
        if errors.isEmpty {
            success.increment()
            return XDSApplyResult(subscriptions: subscriptions)
        }
        rejected.increment()
        let message = "Error adding/updating \(kind)(s) " + errors.joined(separator: "; ")
        logger.warning("\(message)")
        return XDSApplyResult(errorMessage: message, subscriptions: subscriptions)
    }

    private func publish() {
        var view = View()
        view.clusters = clusterManager.load()
        view.listeners = allListeners
        view.dynamicClusters = dynamicClusters.mapValues { ($0.version, $0.lastUpdated) }
        view.warmingClusters = warmingClusters.values.map(\.entry.cluster)
        view.routes = routes.mapValues { ($0.config, $0.version, $0.lastUpdated) }
        view.staticClusterNames = Set(staticClusters.map(\.name))
        view.staticListenerNames = staticListenerNames
        view.failures = failures
        view.assignments = assignments
        view.assignmentVersion = assignmentVersion
        view.staticSecrets = staticSecrets
        view.dynamicSecrets = dynamicSecrets
        published.withLock { $0 = view }
    }

    private func checkInitialFetch() {
        guard receivedTypes.contains(XDSTypes.cluster), receivedTypes.contains(XDSTypes.listener),
              warmingClusters.isEmpty, allListeners.allSatisfy(\.isWarm) else { return }
        onInitialFetchDone?()
    }

    func cancelBackgroundWork() {
        for entry in dynamicClusters.values { entry.dnsRefresh?.cancel() }
        for cluster in healthChecked.values { cluster.stopHealthChecks() }
    }
}

/// Envoy's xDS-side stats: `cluster_manager.cds.*`, `listener_manager.lds.*`, `control_plane.*`.
final class XDSStats: Sendable {
    let cdsUpdateAttempt, cdsUpdateSuccess, cdsUpdateRejected, ldsUpdateAttempt, ldsUpdateSuccess,
        ldsUpdateRejected: Counter
    let connectedState, cdsVersion, ldsVersion: Gauge

    /// Envoy's `version` gauges: a hash of the last accepted version_info.
    static func versionHash(_ version: String) -> Int64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in version.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return Int64(hash >> 12)  // keeps it positive and exact in Prometheus' float64
    }

    init(store: StatsStore) {
        func counter(_ name: String) -> Counter { store.counter(name, StatTags(extractedName: name)) }
        cdsUpdateAttempt = counter("cluster_manager.cds.update_attempt")
        cdsUpdateSuccess = counter("cluster_manager.cds.update_success")
        cdsUpdateRejected = counter("cluster_manager.cds.update_rejected")
        ldsUpdateAttempt = counter("listener_manager.lds.update_attempt")
        ldsUpdateSuccess = counter("listener_manager.lds.update_success")
        ldsUpdateRejected = counter("listener_manager.lds.update_rejected")
        connectedState = store.gauge("control_plane.connected_state", StatTags(extractedName: "control_plane.connected_state"))
        cdsVersion = store.gauge("cluster_manager.cds.version", StatTags(extractedName: "cluster_manager.cds.version"))
        ldsVersion = store.gauge("listener_manager.lds.version", StatTags(extractedName: "listener_manager.lds.version"))
    }
}
