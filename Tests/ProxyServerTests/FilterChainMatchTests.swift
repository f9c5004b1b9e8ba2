import NIOCore
import Testing
import XDSAPI
@testable import ProxyServer

@Suite struct FilterChainMatchTests {
    func info(local: String = "127.0.0.1", localPort: Int = 15001, remote: String = "127.0.0.1",
              remotePort: Int = 40000, transport: String = "", applications: [String] = []) throws -> ConnectionMatchInfo {
        var info = ConnectionMatchInfo(local: try SocketAddress(ipAddress: local, port: localPort),
                                       remote: try SocketAddress(ipAddress: remote, port: remotePort))
        info.transportProtocol = transport
        info.applicationProtocols = applications
        return info
    }

    func match(_ configure: (inout Envoy_Config_Listener_V3_FilterChainMatch) -> Void) throws -> FilterChainMatch {
        var proto = Envoy_Config_Listener_V3_FilterChainMatch()
        configure(&proto)
        return try FilterChainMatch(proto, path: "m")
    }

    func range(_ address: String, _ length: UInt32) -> Envoy_Config_Core_V3_CidrRange {
        var range = Envoy_Config_Core_V3_CidrRange()
        range.addressPrefix = address
        range.prefixLen.value = length
        return range
    }

    @Test func theLongestSourcePrefixWins() throws {
        let chains = [
            try match { $0.sourcePrefixRanges = [range("10.0.0.0", 8)] },
            try match { $0.sourcePrefixRanges = [range("10.1.0.0", 16)] },
            FilterChainMatch(),
        ]
        #expect(FilterChainMatch.select(chains, for: try info(remote: "10.1.2.3")) == 1)
        #expect(FilterChainMatch.select(chains, for: try info(remote: "10.9.2.3")) == 0)
        #expect(FilterChainMatch.select(chains, for: try info(remote: "192.168.0.1")) == 2)
    }

    @Test func destinationPortIsDecidedFirst() throws {
        let chains = [
            try match { $0.destinationPort.value = 15001 },
            try match { $0.sourcePrefixRanges = [range("127.0.0.1", 32)] },
        ]
        // The port narrows to chain 0 before source ranges are looked at.
        #expect(FilterChainMatch.select(chains, for: try info(localPort: 15001)) == 0)
        #expect(FilterChainMatch.select(chains, for: try info(localPort: 15002)) == 1)
    }

    @Test func aNarrowedSetWithNoMatchMatchesNothing() throws {
        let chains = [try match { $0.destinationPort.value = 15001; $0.sourcePorts = [1234] }]
        #expect(FilterChainMatch.select(chains, for: try info(remotePort: 999)) == nil)
        #expect(FilterChainMatch.select(chains, for: try info(remotePort: 1234)) == 0)
    }

    @Test func applicationProtocolsAndSourceType() throws {
        let chains = [
            try match { $0.applicationProtocols = ["h2c"] },
            try match { $0.applicationProtocols = ["http/1.1", "http/1.0"] },
            try match { $0.sourceType = .external },
            FilterChainMatch(),
        ]
        #expect(FilterChainMatch.select(chains, for: try info(applications: ["h2c"])) == 0)
        #expect(FilterChainMatch.select(chains, for: try info(applications: ["http/1.0"])) == 1)
        #expect(FilterChainMatch.select(chains, for: try info(remote: "127.0.0.1")) == 3)
        #expect(FilterChainMatch.select(chains, for: try info(remote: "10.0.0.7")) == 2)
    }

    @Test func ipv6Ranges() throws {
        let chains = [try match { $0.prefixRanges = [range("::1", 128)] }, FilterChainMatch()]
        #expect(FilterChainMatch.select(chains, for: try info(local: "::1", remote: "::1")) == 0)
        #expect(FilterChainMatch.select(chains, for: try info()) == 1)
    }

    @Test func serverNamesExactBeforeTheLongestWildcard() throws {
        let chains = [
            try match { $0.serverNames = ["*.example.com"] },
            try match { $0.serverNames = ["*.api.example.com"] },
            try match { $0.serverNames = ["Exact.API.example.com"] },
            try match { $0.transportProtocol = "tls" },
        ]
        func select(_ name: String?) throws -> Int? {
            var connection = try info(transport: "tls")
            connection.serverName = name
            return FilterChainMatch.select(chains, for: connection)
        }
        #expect(try select("exact.api.example.com") == 2)
        #expect(try select("v1.api.example.com") == 1)
        #expect(try select("www.example.com") == 0)
        #expect(try select("example.com") == 3, "a wildcard needs a label in its place")
        #expect(try select(nil) == 3)
    }

    @Test func badMatchesAreRefused() throws {
        #expect(throws: ListenerConfigError.self) { try match { $0.serverNames = ["a.*.example"] } }
        #expect(throws: ListenerConfigError.self) { try match { $0.transportProtocol = "quic" } }
        #expect(throws: ListenerConfigError.self) { try match { $0.prefixRanges = [range("10.0.0.300", 8)] } }
    }
}

@Suite struct ListenerInspectorTests {

    @Test func applicationProtocol() {
        #expect(ListenerInspector.applicationProtocol(Array("GET / HTTP/1.1\r\nHost: x".utf8)) == .some("http/1.1"))
        #expect(ListenerInspector.applicationProtocol(Array("POST /a HTTP/1.0\r\n".utf8)) == .some("http/1.0"))
        #expect(ListenerInspector.applicationProtocol(Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)) == .some("h2c"))
        #expect(ListenerInspector.applicationProtocol(Array("PRI * HTTP".utf8)) == nil, "a partial preface waits")
        #expect(ListenerInspector.applicationProtocol(Array("GET /long-path".utf8)) == nil, "no line end yet")
        #expect(ListenerInspector.applicationProtocol([0x16, 0x03, 0x01]) == .some(nil))
        #expect(ListenerInspector.applicationProtocol(Array("hello world\r\n".utf8)) == .some(nil))
    }
}
