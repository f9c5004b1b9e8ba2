/// A route's retry policy, compiled: which failures retry, how often, and how long each try may take.
///
/// Immutable and shared by reference: a request reads it at every step of every attempt, and copies of
/// a struct holding four collections cost a retain and a release of each, per copy.
public final class RetryPolicy: Sendable {
    /// Envoy's HTTP `retry_on` conditions.
    public struct Conditions: OptionSet, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }

        public static let fiveXX = Conditions(rawValue: 1 << 0)
        public static let gatewayError = Conditions(rawValue: 1 << 1)
        public static let reset = Conditions(rawValue: 1 << 2)
        public static let connectFailure = Conditions(rawValue: 1 << 3)
        public static let retriable4xx = Conditions(rawValue: 1 << 4)
        public static let refusedStream = Conditions(rawValue: 1 << 5)
        public static let retriableStatusCodes = Conditions(rawValue: 1 << 6)
        public static let resetBeforeRequest = Conditions(rawValue: 1 << 7)
        public static let http3PostConnectFailure = Conditions(rawValue: 1 << 8)
        public static let envoyRateLimited = Conditions(rawValue: 1 << 9)
        public static let retriableHeaders = Conditions(rawValue: 1 << 10)
        // gRPC conditions: a response whose headers carry this `grpc-status` (a trailers-only reply).
        public static let grpcCancelled = Conditions(rawValue: 1 << 16)
        public static let grpcDeadlineExceeded = Conditions(rawValue: 1 << 17)
        public static let grpcInternal = Conditions(rawValue: 1 << 18)
        public static let grpcResourceExhausted = Conditions(rawValue: 1 << 19)
        public static let grpcUnavailable = Conditions(rawValue: 1 << 20)
        static let grpc: Conditions = [.grpcCancelled, .grpcDeadlineExceeded, .grpcInternal, .grpcResourceExhausted,
                                       .grpcUnavailable]

        static let byName: [String: Conditions] = [
            "5xx": .fiveXX, "gateway-error": .gatewayError, "reset": .reset, "connect-failure": .connectFailure,
            "retriable-4xx": .retriable4xx, "refused-stream": .refusedStream,
            "retriable-status-codes": .retriableStatusCodes, "reset-before-request": .resetBeforeRequest,
            "http3-post-connect-failure": .http3PostConnectFailure, "envoy-ratelimited": .envoyRateLimited,
            "retriable-headers": .retriableHeaders,
            "cancelled": .grpcCancelled, "deadline-exceeded": .grpcDeadlineExceeded, "internal": .grpcInternal,
            "resource-exhausted": .grpcResourceExhausted, "unavailable": .grpcUnavailable,
        ]

        /// Parses a comma-separated `retry_on` value (or `x-envoy-retry-on` header); unknown names are
        /// ignored, as Envoy does for the header.
        public init(parsing text: some StringProtocol) {
            var conditions: Conditions = []
            for part in text.split(separator: ",") {
                let name = part.trimmingSpaces()
                if let condition = Self.byName[name] { conditions.insert(condition) }
            }
            self = conditions
        }

        /// Names Envoy does not know, for config validation.
        public static func unknownNames(in text: String) -> [String] {
            text.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty && byName[$0] == nil }
        }
    }

    public let retryOn: Conditions
    public let numRetries: Int
    /// 0 means no per-try timeout (the route timeout bounds all tries).
    public let perTryTimeoutMs: Int64
    /// `per_try_idle_timeout`: an attempt with no upstream activity for this long ends (0: none).
    public let perTryIdleTimeoutMs: Int64
    public let retriableStatusCodes: Set<Int>
    public let backOffBaseMs: Int64
    public let backOffMaxMs: Int64
    /// `retriable_headers`: with `retriable-headers`, a response matching any of these is retried.
    public let retriableHeaders: [HeaderMatcher]
    /// `retriable_request_headers`: when set, only requests matching one of these are retried at all.
    public let retriableRequestHeaders: [HeaderMatcher]
    /// `retry_host_predicate` previous_hosts: a retry avoids hosts already tried, re-picking up to
    /// `host_selection_retry_max_attempts` times.
    public let avoidsPreviousHosts: Bool
    public let hostSelectionAttempts: Int
    /// `rate_limited_retry_back_off`: response headers that say when to try again, in order.
    public let resetHeaders: [ResetHeader]
    /// The longest wait a reset header may ask for (`max_interval`, 300 s unless set).
    public let resetMaxIntervalMs: Int64

    /// One `reset_headers` entry: `Retry-After: 5` (seconds) or `X-RateLimit-Reset: 1700000000` (a Unix time).
    public struct ResetHeader: Sendable {
        public let name: String
        public let isUnixTimestamp: Bool

        public init(name: String, isUnixTimestamp: Bool) {
            self.name = name
            self.isUnixTimestamp = isUnixTimestamp
        }
    }

    /// The wait the first usable reset header asks for, in milliseconds; nil when none does (or asks
    /// for longer than the maximum), and the exponential back-off applies.
    public func resetIntervalMs(header: (String) -> String?, nowSeconds: Double) -> Int64? {
        for reset in resetHeaders {
            guard let text = header(reset.name), let value = Double(text.trimmingSpaces()), value >= 0 else { continue }
            let milliseconds = Int64((reset.isUnixTimestamp ? value - nowSeconds : value) * 1000)
            if milliseconds > 0, milliseconds <= resetMaxIntervalMs { return milliseconds }
        }
        return nil
    }

    public init(retryOn: Conditions = [], numRetries: Int = 1, perTryTimeoutMs: Int64 = 0, perTryIdleTimeoutMs: Int64 = 0,
                retriableStatusCodes: Set<Int> = [], backOffBaseMs: Int64 = 25, backOffMaxMs: Int64 = 250,
                retriableHeaders: [HeaderMatcher] = [], retriableRequestHeaders: [HeaderMatcher] = [],
                avoidsPreviousHosts: Bool = false, hostSelectionAttempts: Int = 1, resetHeaders: [ResetHeader] = [],
                resetMaxIntervalMs: Int64 = 300_000) {
        self.retryOn = retryOn
        self.numRetries = numRetries
        self.perTryTimeoutMs = perTryTimeoutMs
        self.perTryIdleTimeoutMs = perTryIdleTimeoutMs
        self.retriableStatusCodes = retriableStatusCodes
        self.backOffBaseMs = backOffBaseMs
        self.backOffMaxMs = backOffMaxMs
        self.retriableHeaders = retriableHeaders
        self.retriableRequestHeaders = retriableRequestHeaders
        self.avoidsPreviousHosts = avoidsPreviousHosts
        self.hostSelectionAttempts = hostSelectionAttempts
        self.resetHeaders = resetHeaders
        self.resetMaxIntervalMs = resetMaxIntervalMs
    }

    /// This policy with other conditions and count (what `x-envoy-retry-on` and `x-envoy-max-retries` ask).
    public func with(retryOn: Conditions, numRetries: Int) -> RetryPolicy {
        RetryPolicy(retryOn: retryOn, numRetries: numRetries, perTryTimeoutMs: perTryTimeoutMs,
                    perTryIdleTimeoutMs: perTryIdleTimeoutMs, retriableStatusCodes: retriableStatusCodes,
                    backOffBaseMs: backOffBaseMs, backOffMaxMs: backOffMaxMs, retriableHeaders: retriableHeaders,
                    retriableRequestHeaders: retriableRequestHeaders, avoidsPreviousHosts: avoidsPreviousHosts,
                    hostSelectionAttempts: hostSelectionAttempts, resetHeaders: resetHeaders,
                    resetMaxIntervalMs: resetMaxIntervalMs)
    }

    /// Whether the request may be retried at all (`retriable_request_headers`).
    public func allowsRetry(requestHeader: (String) -> String?) -> Bool {
        retriableRequestHeaders.isEmpty || retriableRequestHeaders.contains { $0.matches(requestHeader($0.name)) }
    }

    /// Whether response headers match `retriable_headers` under the `retriable-headers` condition.
    public func retries(responseHeader: (String) -> String?) -> Bool {
        retryOn.contains(.retriableHeaders) && retriableHeaders.contains { $0.matches(responseHeader($0.name)) }
    }

    /// Whether a response with `status` should be retried under these conditions.
    public func retries(status: Int) -> Bool {
        if retryOn.contains(.fiveXX), status >= 500 { return true }
        if retryOn.contains(.gatewayError), (502...504).contains(status) { return true }
        if retryOn.contains(.retriable4xx), status == 409 { return true }
        if retryOn.contains(.retriableStatusCodes), retriableStatusCodes.contains(status) { return true }
        return false
    }

    /// Whether any gRPC condition is set (so response headers are checked for `grpc-status`).
    public var retriesGRPC: Bool { !retryOn.isDisjoint(with: Conditions.grpc) }

    /// Whether a response whose headers say `grpc-status: code` should be retried.
    public func retries(grpcStatus code: Int) -> Bool {
        switch code {
        case 1: retryOn.contains(.grpcCancelled)
        case 4: retryOn.contains(.grpcDeadlineExceeded)
        case 8: retryOn.contains(.grpcResourceExhausted)
        case 13: retryOn.contains(.grpcInternal)
        case 14: retryOn.contains(.grpcUnavailable)
        default: false
        }
    }

    /// Whether a failure before any response (connect failure, reset, per-try timeout) should be retried.
    public func retries(failure: UpstreamFailure) -> Bool {
        switch failure {
        case .connectFailure:
            return !retryOn.isDisjoint(with: [.fiveXX, .gatewayError, .connectFailure, .reset, .resetBeforeRequest])
        case .reset:
            return !retryOn.isDisjoint(with: [.fiveXX, .gatewayError, .reset])
        case .perTryTimeout:
            return !retryOn.isDisjoint(with: [.fiveXX, .gatewayError])
        }
    }
}

/// Failures of one upstream attempt that produce no response.
public enum UpstreamFailure: Sendable, Equatable {
    case connectFailure
    case reset
    case perTryTimeout
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
