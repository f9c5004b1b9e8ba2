import ProxyCore
import Synchronization

/// One upstream endpoint of a cluster, with the per-host counters `/clusters` prints.
public final class Host: Sendable {
    /// Address to connect to: an IP literal or a DNS name.
    public let address: String
    public let port: Int
    /// The name `auto_host_rewrite` puts in Host (for DNS clusters, the endpoint's DNS name).
    public let hostname: String
    public let weight: UInt32
    public let stats: HostStats
    /// Outlier detection's view of this host (used only when the cluster has outlier_detection).
    public let outlier: HostOutlierState
    /// Active health checking's view of this host.
    public let health: HostHealth
    /// Set on a cluster's per-SNI view of a host (`auto_sni`): the TLS server name its connections
    /// use. Views share the host's stats and outlier state; pools keep their connections apart.
    public let sni: String?
    /// What ALPN chose on this host's last TLS connection: 0 not known, 1 HTTP/1.1, 2 HTTP/2
    /// (`auto_config` clusters pick their pool by it).
    private let alpn = Atomic<UInt8>(0)

    public var negotiatedHTTP2: Bool? {
        switch alpn.load(ordering: .relaxed) {
        case 1: false
        case 2: true
        default: nil
        }
    }

    public func recordNegotiated(http2: Bool) { alpn.store(http2 ? 2 : 1, ordering: .relaxed) }

    /// The EDS priority of the host's locality (0 first).
    public let priority: UInt32
    public let locality: Locality
    /// The locality's `load_balancing_weight` (0 when unset: no traffic under locality-weighted balancing).
    public let localityWeight: UInt32
    /// EDS `health_status` as Envoy names it (`HEALTHY` unless EDS says otherwise).
    public let edsHealthStatus: String
    /// UNHEALTHY, DRAINING or TIMEOUT: the control plane says not to use it.
    public var failedEDSHealth: Bool { ["UNHEALTHY", "DRAINING", "TIMEOUT"].contains(edsHealthStatus) }

    /// Where a host runs, as EDS names it.
    public struct Locality: Sendable, Hashable {
        public var region = ""
        public var zone = ""
        public var subZone = ""
        public init(region: String = "", zone: String = "", subZone: String = "") {
            self.region = region
            self.zone = zone
            self.subZone = subZone
        }
    }

    public init(address: String, port: Int, hostname: String, weight: UInt32 = 1, priority: UInt32 = 0,
                locality: Locality = Locality(), localityWeight: UInt32 = 0, edsHealthStatus: String = "HEALTHY") {
        self.address = address
        self.port = port
        self.hostname = hostname
        self.weight = max(1, weight)
        self.priority = priority
        self.locality = locality
        self.localityWeight = localityWeight
        self.edsHealthStatus = edsHealthStatus
        self.stats = HostStats()
        self.outlier = HostOutlierState()
        self.health = HostHealth()
        self.sni = nil
    }

    /// `base` as reached with TLS server name `sni`.
    init(_ base: Host, sni: String) {
        address = base.address
        port = base.port
        hostname = base.hostname
        weight = base.weight
        priority = base.priority
        locality = base.locality
        localityWeight = base.localityWeight
        edsHealthStatus = base.edsHealthStatus
        stats = base.stats
        outlier = base.outlier
        health = base.health
        self.sni = sni
    }

    /// Whether an EDS update describes this same host (it keeps its stats and connections).
    func isSame(as other: Host) -> Bool {
        address == other.address && port == other.port && weight == other.weight && priority == other.priority
            && locality == other.locality && localityWeight == other.localityWeight
            && edsHealthStatus == other.edsHealthStatus
    }

    /// `127.0.0.1:8000` or `[::1]:8000`, as Envoy prints host addresses.
    public var addressDescription: String {
        address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

/// Per-host counters and gauges (not in the stats store, as in Envoy: `/clusters` shows them).
public final class HostStats: Sendable {
    public let cxTotal = Atomic<UInt64>(0)
    public let cxActive = Atomic<Int64>(0)
    public let cxConnectFail = Atomic<UInt64>(0)
    public let rqTotal = Atomic<UInt64>(0)
    public let rqActive = Atomic<Int64>(0)
    public let rqError = Atomic<UInt64>(0)
    public let rqSuccess = Atomic<UInt64>(0)
    public let rqTimeout = Atomic<UInt64>(0)
    public let rqPendingActive = Atomic<Int64>(0)

    public init() {}
}
