import NIOCore

/// Command-line options of meshproxy, named as Envoy's.
public struct ServerOptions: Sendable {
    public enum Mode: String, Sendable {
        case serve
        case validate
        case initOnly = "init_only"
    }

    public var configPath: String?
    public var configYAML: String?
    public var concurrency: Int
    public var logLevel: String
    public var serviceNode: String?
    public var serviceCluster: String?
    public var serviceZone: String?
    public var drainTimeSeconds: Int
    public var baseID: Int
    public var mode: Mode
    /// `--file-flush-interval-msec`: how often access log buffers are written out (Envoy: 10 s).
    public var fileFlushIntervalMilliseconds: Int
    /// `--workload-cert-from-csr`: make the workload key here and have meshd certify it (the SDS secret
    /// `default` is then local, never received over the network).
    public var workloadCertFromCSR: Bool

    public init(configPath: String? = nil, configYAML: String? = nil, concurrency: Int = System.coreCount,
                logLevel: String = "info", serviceNode: String? = nil, serviceCluster: String? = nil,
                serviceZone: String? = nil, drainTimeSeconds: Int = 600, baseID: Int = 0, mode: Mode = .serve,
                fileFlushIntervalMilliseconds: Int = 10_000, workloadCertFromCSR: Bool = false) {
        self.workloadCertFromCSR = workloadCertFromCSR
        self.fileFlushIntervalMilliseconds = fileFlushIntervalMilliseconds
        self.configPath = configPath
        self.configYAML = configYAML
        self.concurrency = concurrency
        self.logLevel = logLevel
        self.serviceNode = serviceNode
        self.serviceCluster = serviceCluster
        self.serviceZone = serviceZone
        self.drainTimeSeconds = drainTimeSeconds
        self.baseID = baseID
        self.mode = mode
    }
}

