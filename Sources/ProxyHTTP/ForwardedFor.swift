import NIOCore
import NIOHTTP1
import ProxyCore

/// How the connection manager decides whether a request is internal, and the headers it edits on the
/// way in, as Envoy 1.40 does: `use_remote_address`, `xff_num_trusted_hops`, `skip_xff_append` and
/// `internal_address_config`. Only an internal request may steer the router with `x-envoy-*`
/// headers (retries, timeouts); with no internal addresses configured, none is internal.
public struct ForwardedFor: Sendable {
    public var useRemoteAddress = false
    public var trustedHops = 0
    public var skipAppend = false
    /// `internal_address_config.cidr_ranges`.
    public var internalRanges: [CIDRRange] = []
    /// What is appended to `x-forwarded-for` for a peer on loopback: the server's own address, as
    /// Envoy appends its local address there.
    public var localAddress: String?

    public init() {}

    /// Whether the defaults apply: nothing is internal and no forwarding header changes.
    var isPassive: Bool { !useRemoteAddress && internalRanges.isEmpty }

    /// Headers an edge request may not bring: Envoy's sanitized `x-envoy-*` set.
    static let edgeSanitized: Set<String> = [
        "x-envoy-decorator-operation", "x-envoy-downstream-service-cluster", "x-envoy-downstream-service-node",
        "x-envoy-expected-rq-timeout-ms", "x-envoy-external-address", "x-envoy-force-trace", "x-envoy-internal",
        "x-envoy-ip-tags", "x-envoy-max-retries", "x-envoy-retry-grpc-on", "x-envoy-retry-on",
        "x-envoy-upstream-alt-stat-name", "x-envoy-upstream-rq-per-try-timeout-ms",
        "x-envoy-upstream-rq-timeout-alt-response", "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-upstream-stream-duration-ms",
    ]

    /// Edits `headers` of a request that came from `peer` over `scheme`; returns whether it is internal.
    func apply(to headers: inout HTTPHeaders, peer: SocketAddress?, scheme: String) -> Bool {
        if isPassive {
            // Nothing is internal: a client's own claim to be is dropped.
            if headers.contains(name: "x-envoy-internal") { headers.remove(name: "x-envoy-internal") }
            return false
        }
        var forwarded = headers[canonicalForm: "x-forwarded-for"].map(Self.trimmed)
        let peerIP = peer?.ipAddress
        let remote: String?
        if useRemoteAddress {
            remote = trustedHops > 0 && forwarded.count >= trustedHops ? forwarded[forwarded.count - trustedHops] : peerIP
            if !skipAppend, let peerIP {
                let appended = Self.isLoopback(peerIP) ? localAddress ?? peerIP : peerIP
                let raw = headers["x-forwarded-for"]
                let existing = raw.isEmpty ? nil : raw.joined(separator: ",")
                headers.replaceOrAdd(name: "x-forwarded-for", value: existing.map { $0 + "," + appended } ?? appended)
                forwarded.append(appended)
            }
        } else {
            remote = forwarded.count > trustedHops ? forwarded[forwarded.count - 1 - trustedHops] : nil
        }
        let isInternal = forwarded.count == 1 && remote.map(isInternalAddress) == true
        if useRemoteAddress {
            if !isInternal {
                // An edge request: what only a trusted hop may say is dropped.
                for name in Self.edgeSanitized { headers.remove(name: name) }
                if let remote { headers.replaceOrAdd(name: "x-envoy-external-address", value: remote) }
            }
            if trustedHops == 0 { headers.replaceOrAdd(name: "x-forwarded-proto", value: scheme) }
        }
        if isInternal {
            headers.replaceOrAdd(name: "x-envoy-internal", value: "true")
        } else if headers.contains(name: "x-envoy-internal") {
            headers.remove(name: "x-envoy-internal")
        }
        return isInternal
    }

    func isInternalAddress(_ address: String) -> Bool {
        guard let bytes = CIDRRange.parse(address) else { return false }
        return internalRanges.contains { $0.contains(bytes) }
    }

    static func trimmed(_ text: Substring) -> String {
        var text = text
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return String(text)
    }

    static func isLoopback(_ address: String) -> Bool {
        address.hasPrefix("127.") || address == "::1"
    }
}

