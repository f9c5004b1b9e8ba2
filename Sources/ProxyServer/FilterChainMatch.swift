import NIOCore
import ProxyCore
import XDSAPI
import XDSResource

/// What a new connection offers for choosing a filter chain: its addresses, and what the listener
/// filters found in its first bytes.
struct ConnectionMatchInfo {
    var localAddress: [UInt8]?
    var localPort: Int?
    var remoteAddress: [UInt8]?
    var remotePort: Int?
    /// `tls` or `raw_buffer` from tls_inspector; empty without it.
    var transportProtocol = ""
    /// `http/1.1`, `http/1.0` or `h2c` from http_inspector, or the ALPN list from tls_inspector.
    var applicationProtocols: [String] = []
    /// The SNI host name tls_inspector found, lower-cased.
    var serverName: String?

    init(local: SocketAddress?, remote: SocketAddress?) {
        localAddress = local?.ipAddress.flatMap(CIDRRange.parse)
        localPort = local?.port
        remoteAddress = remote?.ipAddress.flatMap(CIDRRange.parse)
        remotePort = remote?.port
    }
}

/// A filter chain's `filter_chain_match`, compiled. Selection narrows the candidates criterion by
/// criterion in Envoy's order, each time keeping the most specific chains that match and falling
/// back to the chains that leave the criterion unset.
struct FilterChainMatch: Sendable {
    enum SourceType: Sendable { case any, sameIPOrLoopback, external }

    var destinationPort: Int?
    var prefixRanges: [CIDRRange] = []
    var transportProtocol = ""
    var applicationProtocols: [String] = []
    /// Lower-cased; `*.example.com` entries match any one or more leading labels.
    var serverNames: [String] = []
    var directSourcePrefixRanges: [CIDRRange] = []
    var sourceType = SourceType.any
    var sourcePrefixRanges: [CIDRRange] = []
    var sourcePorts: Set<Int> = []

    init() {}

    init(_ proto: Envoy_Config_Listener_V3_FilterChainMatch, path: String) throws {
        if proto.hasDestinationPort {
            guard (1...65535).contains(proto.destinationPort.value) else {
                throw ListenerConfigError(path + ".destination_port", "value must be in [1, 65535]")
            }
            destinationPort = Int(proto.destinationPort.value)
        }
        prefixRanges = try Self.ranges(proto.prefixRanges, path: path + ".prefix_ranges")
        directSourcePrefixRanges = try Self.ranges(proto.directSourcePrefixRanges, path: path + ".direct_source_prefix_ranges")
        sourcePrefixRanges = try Self.ranges(proto.sourcePrefixRanges, path: path + ".source_prefix_ranges")
        sourcePorts = Set(proto.sourcePorts.map(Int.init))
        switch proto.sourceType {
        case .any: sourceType = .any
        case .sameIpOrLoopback: sourceType = .sameIPOrLoopback
        case .external: sourceType = .external
        case .UNRECOGNIZED(let value): throw ListenerConfigError(path + ".source_type", "unknown source type \(value)")
        }
        serverNames = proto.serverNames.map { $0.lowercased() }
        for (index, name) in serverNames.enumerated() where name.contains("*") && !(name.hasPrefix("*.") && name.filter { $0 == "*" }.count == 1) {
            throw ListenerConfigError("\(path).server_names[\(index)]", "only a leading '*.' wildcard is supported")
        }
        if !proto.addressSuffix.isEmpty || proto.hasSuffixLen {
            throw ListenerConfigError(path + ".address_suffix", "not supported (Envoy does not implement it either)")
        }
        switch proto.transportProtocol {
        case "", "raw_buffer", "tls": transportProtocol = proto.transportProtocol
        default: throw ListenerConfigError(path + ".transport_protocol", "unknown transport protocol '\(proto.transportProtocol)'")
        }
        applicationProtocols = proto.applicationProtocols
    }

    private static func ranges(_ ranges: [Envoy_Config_Core_V3_CidrRange], path: String) throws -> [CIDRRange] {
        try ranges.enumerated().map { index, range in
            let length = range.hasPrefixLen ? Int(range.prefixLen.value) : (range.addressPrefix.contains(":") ? 128 : 32)
            guard let parsed = CIDRRange(address: range.addressPrefix, prefixLength: length) else {
                throw ListenerConfigError("\(path)[\(index)]", "malformed IP range \(range.addressPrefix)/\(length)")
            }
            return parsed
        }
    }

    /// Whether any criterion is set: a chain with none matches every connection.
    var isRestrictive: Bool {
        destinationPort != nil || !prefixRanges.isEmpty || !serverNames.isEmpty || !transportProtocol.isEmpty || !applicationProtocols.isEmpty
            || !directSourcePrefixRanges.isEmpty || sourceType != .any || !sourcePrefixRanges.isEmpty
            || !sourcePorts.isEmpty
    }

    /// The index of the chain for `info`, or nil when none matches.
    static func select(_ matches: [FilterChainMatch], for info: ConnectionMatchInfo) -> Int? {
        var candidates = Array(matches.indices)
        func narrow(_ specificity: (FilterChainMatch) -> Int?) -> Bool {
            // nil: the chain does not match; 0: it leaves the criterion unset; higher: more specific.
            let scored = candidates.compactMap { index in specificity(matches[index]).map { (index, $0) } }
            guard let best = scored.map(\.1).max() else { return false }
            candidates = scored.filter { $0.1 == best }.map(\.0)
            return true
        }
        func prefixScore(_ ranges: [CIDRRange], _ address: [UInt8]?) -> Int? {
            if ranges.isEmpty { return 0 }
            guard let address else { return nil }
            return ranges.filter { $0.contains(address) }.map { $0.prefixLength + 1 }.max()
        }
        let steps: [(FilterChainMatch) -> Int?] = [
            { match in
                guard let port = match.destinationPort else { return 0 }
                return port == info.localPort ? 1 : nil
            },
            { match in prefixScore(match.prefixRanges, info.localAddress) },
            { match in serverNameScore(match.serverNames, info.serverName) },
            { match in match.transportProtocol.isEmpty ? 0 : (match.transportProtocol == info.transportProtocol ? 1 : nil) },
            { match in
                if match.applicationProtocols.isEmpty { return 0 }
                return match.applicationProtocols.contains(where: info.applicationProtocols.contains) ? 1 : nil
            },
            { match in prefixScore(match.directSourcePrefixRanges, info.remoteAddress) },
            { match in
                switch match.sourceType {
                case .any: return 0
                case .sameIPOrLoopback: return isLocal(info) ? 1 : nil
                case .external: return isLocal(info) ? nil : 1
                }
            },
            { match in prefixScore(match.sourcePrefixRanges, info.remoteAddress) },
            { match in match.sourcePorts.isEmpty ? 0 : (info.remotePort.map(match.sourcePorts.contains) == true ? 1 : nil) },
        ]
        for step in steps {
            guard narrow(step) else { return nil }
        }
        return candidates.first
    }

    /// Exact names win over wildcards, and longer wildcards over shorter ones.
    private static func serverNameScore(_ names: [String], _ serverName: String?) -> Int? {
        if names.isEmpty { return 0 }
        guard let serverName else { return nil }
        var best: Int?
        for name in names {
            if name == serverName { return Int.max }
            if name.hasPrefix("*."), serverName.hasSuffix(name.dropFirst()), serverName.count > name.count - 1 {
                best = max(best ?? 0, name.count)
            }
        }
        return best
    }

    private static func isLocal(_ info: ConnectionMatchInfo) -> Bool {
        guard let remote = info.remoteAddress else { return false }
        if remote == info.localAddress { return true }
        if remote.count == 4 { return remote[0] == 127 }
        return remote == Array(repeating: 0, count: 15) + [1]
    }
}
