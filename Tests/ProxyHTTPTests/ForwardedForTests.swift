import NIOCore
import NIOHTTP1
import ProxyCore
import Testing
@testable import ProxyHTTP

@Suite struct ForwardedForTests {
    static let peer = try! SocketAddress(ipAddress: "10.0.0.7", port: 40000)

    @Test func byDefaultNothingIsInternalAndHeadersStay() {
        var headers = HTTPHeaders([("x-envoy-internal", "true"), ("x-forwarded-for", "10.1.2.3"), ("x-envoy-retry-on", "5xx")])
        #expect(!ForwardedFor().apply(to: &headers, peer: Self.peer, scheme: "http"))
        #expect(headers.map(\.name) == ["x-forwarded-for", "x-envoy-retry-on"])
    }

    @Test func useRemoteAddressAppendsThePeerAndSanitizesAnEdgeRequest() {
        var policy = ForwardedFor()
        policy.useRemoteAddress = true
        var headers = HTTPHeaders([("x-forwarded-for", "8.8.8.8, 1.2.3.4"), ("x-envoy-retry-on", "5xx"),
                                   ("x-forwarded-proto", "https"), ("x-envoy-external-address", "1.1.1.1")])
        #expect(!policy.apply(to: &headers, peer: Self.peer, scheme: "http"))
        #expect(headers["x-forwarded-for"] == ["8.8.8.8, 1.2.3.4,10.0.0.7"])
        #expect(headers["x-envoy-external-address"] == ["10.0.0.7"])
        #expect(headers["x-forwarded-proto"] == ["http"])
        #expect(!headers.contains(name: "x-envoy-retry-on"))
    }

    @Test func anInternalPeerWithNoForwardingIsTrusted() throws {
        var policy = ForwardedFor()
        policy.useRemoteAddress = true
        policy.internalRanges = [try #require(CIDRRange(address: "10.0.0.0", prefixLength: 8))]
        var headers = HTTPHeaders([("x-envoy-retry-on", "5xx")])
        #expect(policy.apply(to: &headers, peer: Self.peer, scheme: "http"))
        #expect(headers["x-envoy-internal"] == ["true"])
        #expect(headers["x-envoy-retry-on"] == ["5xx"])
        // One hop more and it is external again.
        var forwarded = HTTPHeaders([("x-forwarded-for", "10.9.9.9")])
        #expect(!policy.apply(to: &forwarded, peer: Self.peer, scheme: "http"))
    }

    @Test func withoutRemoteAddressTheLastForwardedAddressDecides() throws {
        var policy = ForwardedFor()
        policy.internalRanges = [try #require(CIDRRange(address: "10.0.0.0", prefixLength: 8))]
        var single = HTTPHeaders([("x-forwarded-for", " 10.1.2.3 ")])
        #expect(policy.apply(to: &single, peer: Self.peer, scheme: "http"))
        var two = HTTPHeaders([("x-forwarded-for", "8.8.8.8, 10.1.2.3")])
        #expect(!policy.apply(to: &two, peer: Self.peer, scheme: "http"))
        var none = HTTPHeaders()
        #expect(!policy.apply(to: &none, peer: Self.peer, scheme: "http"))
    }

    @Test func aLoopbackPeerIsRecordedAsTheServersAddress() throws {
        var policy = ForwardedFor()
        policy.useRemoteAddress = true
        policy.localAddress = "192.0.2.2"
        var headers = HTTPHeaders()
        _ = policy.apply(to: &headers, peer: try SocketAddress(ipAddress: "127.0.0.1", port: 1), scheme: "https")
        #expect(headers["x-forwarded-for"] == ["192.0.2.2"])
        #expect(headers["x-envoy-external-address"] == ["127.0.0.1"])
    }
}
