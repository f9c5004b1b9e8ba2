import NIOCore

/// An endpoint of a DNS cluster as configured: a name to resolve and the port to use.
public struct DNSEndpoint: Sendable, Equatable {
    public var name: String
    public var port: Int
    public var weight: UInt32

    public init(name: String, port: Int, weight: UInt32) {
        self.name = name
        self.port = port
        self.weight = weight
    }
}

extension Cluster {
    /// Resolves every endpoint once and installs the resulting hosts. STRICT_DNS makes one host per
    /// address; LOGICAL_DNS keeps one host, the first address. Hosts whose address did not change are
    /// kept, with their stats and connections. A failed resolution keeps the previous hosts.
    public func refreshDNS(using resolver: any DNSResolver) async {
        guard discoveryType == .strictDNS || discoveryType == .logicalDNS else { return }
        stats.updateAttempt.increment()
        var resolved: [Host] = []
        let current = hosts
        for endpoint in dnsEndpoints {
            let addresses: [String]
            if Cluster.isIPLiteral(endpoint.name) {
                addresses = [endpoint.name]
            } else {
                do {
                    addresses = dnsLookupFamily.select(try await resolver.resolve(endpoint.name, family: dnsLookupFamily))
                } catch {
                    stats.updateFailure.increment()
                    return
                }
            }
            let chosen = discoveryType == .logicalDNS ? Array(addresses.prefix(1)) : addresses
            for address in chosen {
                if let existing = current.first(where: {
                    $0.address == address && $0.port == endpoint.port && $0.hostname == endpoint.name
                }) {
                    resolved.append(existing)
                } else {
                    resolved.append(Host(address: address, port: endpoint.port, hostname: endpoint.name,
                                         weight: endpoint.weight))
                }
            }
        }
        stats.updateSuccess.increment()
        if resolved.map(ObjectIdentifier.init) != current.map(ObjectIdentifier.init) {
            stats.membershipChange.increment()
            replaceHosts(resolved)
        } else {
            stats.updateNoRebuild.increment()
        }
    }

    /// Re-resolves every `dns_refresh_rate` until the task is cancelled.
    public func startDNSRefresh(using resolver: any DNSResolver) -> Task<Void, Never>? {
        guard discoveryType == .strictDNS || discoveryType == .logicalDNS, !dnsEndpoints.allSatisfy({ Cluster.isIPLiteral($0.name) }) else { return nil }
        let interval = dnsRefreshInterval
        return Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                await refreshDNS(using: resolver)
            }
        }
    }
}
