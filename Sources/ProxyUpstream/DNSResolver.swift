/// Which address families a DNS cluster asks for (Envoy's `dns_lookup_family`).
public enum DNSLookupFamily: Sendable, Equatable {
    /// IPv6 if the name has any, else IPv4.
    case auto
    case v4Only
    case v6Only
    /// IPv4 if the name has any, else IPv6.
    case v4Preferred
    /// Every address of both families.
    case all
}

/// Resolves host names for STRICT_DNS and LOGICAL_DNS clusters. Injected, so this module does no
/// I/O itself and tests resolve from a table.
public protocol DNSResolver: Sendable {
    /// The IP addresses of `name`, as text, in the order the resolver gave them.
    func resolve(_ name: String, family: DNSLookupFamily) async throws -> [String]
}

extension DNSLookupFamily {
    /// Applies the family's preference to addresses of both families.
    public func select(_ addresses: [String]) -> [String] {
        let v6 = addresses.filter { $0.contains(":") }
        let v4 = addresses.filter { !$0.contains(":") }
        switch self {
        case .auto: return v6.isEmpty ? v4 : v6
        case .v4Only: return v4
        case .v6Only: return v6
        case .v4Preferred: return v4.isEmpty ? v6 : v4
        case .all: return addresses
        }
    }
}
