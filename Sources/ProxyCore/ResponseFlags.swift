/// Envoy's response flags, the short codes access logs print (`NR`, `UF`, ...).
public struct ResponseFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let noRouteFound = ResponseFlags(rawValue: 1 << 0)
    public static let noHealthyUpstream = ResponseFlags(rawValue: 1 << 1)
    public static let upstreamConnectionFailure = ResponseFlags(rawValue: 1 << 2)
    public static let upstreamRequestTimeout = ResponseFlags(rawValue: 1 << 3)
    public static let upstreamRemoteReset = ResponseFlags(rawValue: 1 << 4)
    public static let upstreamOverflow = ResponseFlags(rawValue: 1 << 5)
    public static let upstreamRetryLimitExceeded = ResponseFlags(rawValue: 1 << 6)
    public static let noClusterFound = ResponseFlags(rawValue: 1 << 7)
    public static let downstreamConnectionTermination = ResponseFlags(rawValue: 1 << 8)
    public static let upstreamConnectionTermination = ResponseFlags(rawValue: 1 << 9)
    /// A request or connection outlived `max_connection_duration` (`DT`).
    public static let durationTimeout = ResponseFlags(rawValue: 1 << 10)
    /// The fault filter delayed the request (`DI`) or answered it (`FI`).
    public static let delayInjected = ResponseFlags(rawValue: 1 << 11)
    public static let faultInjected = ResponseFlags(rawValue: 1 << 12)
    /// A rate limit refused the request (`RL`).
    public static let rateLimited = ResponseFlags(rawValue: 1 << 13)
    /// The stream saw no activity for its idle timeout (`SI`).
    public static let streamIdleTimeout = ResponseFlags(rawValue: 1 << 14)
    /// The request broke an HTTP rule or limit (`DPE`).
    public static let downstreamProtocolError = ResponseFlags(rawValue: 1 << 15)
    /// The upstream's response broke an HTTP rule or limit (`UPE`).
    public static let upstreamProtocolError = ResponseFlags(rawValue: 1 << 16)

    private static let codes: [(ResponseFlags, String)] = [
        (.noRouteFound, "NR"), (.noHealthyUpstream, "UH"), (.upstreamConnectionFailure, "UF"),
        (.upstreamRequestTimeout, "UT"), (.upstreamRemoteReset, "UR"), (.upstreamOverflow, "UO"),
        (.upstreamRetryLimitExceeded, "URX"), (.noClusterFound, "NC"), (.downstreamConnectionTermination, "DC"),
        (.upstreamConnectionTermination, "UC"), (.durationTimeout, "DT"), (.delayInjected, "DI"),
        (.faultInjected, "FI"), (.rateLimited, "RL"), (.streamIdleTimeout, "SI"),
        (.downstreamProtocolError, "DPE"), (.upstreamProtocolError, "UPE"),
    ]

    /// The flag Envoy writes as `code` (`UH`, `NR`...), if meshproxy has it.
    public init?(code: String) {
        guard let flag = Self.codes.first(where: { $0.1 == code })?.0 else { return nil }
        self = flag
    }

    /// Every code Envoy documents, including those meshproxy never sets, for config validation.
    public static let envoyCodes: Set<String> = [
        "NR", "UH", "UF", "UT", "UR", "UO", "URX", "NC", "DC", "UC", "DT", "LH", "LR", "RL", "UAEX", "RLSE", "DI", "FI",
        "IH", "SI", "DPE", "UPE", "UMSDR", "OM", "DF", "DO", "DR", "UDO",
    ]

    /// `-` when empty, else the codes joined by commas, as `%RESPONSE_FLAGS%` prints them.
    public var description: String {
        let names = Self.codes.filter { contains($0.0) }.map(\.1)
        return names.isEmpty ? "-" : names.joined(separator: ",")
    }
}
