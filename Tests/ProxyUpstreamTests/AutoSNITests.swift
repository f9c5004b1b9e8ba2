import Testing
@testable import ProxyUpstream

@Suite struct AutoSNITests {
    @Test func serverNameDropsThePort() {
        #expect(AutoSNI.serverName(fromHost: "api.example.com:8443") == "api.example.com")
        #expect(AutoSNI.serverName(fromHost: "api.example.com") == "api.example.com")
        #expect(AutoSNI.serverName(fromHost: "[::1]:8443") == "[::1]")
    }

    @Test func viewsShareStatsAndStayBounded() {
        let views = SNIHostViews()
        let host = Host(address: "10.0.0.1", port: 443, hostname: "backend")
        let a = views.view(of: host, sni: "a.example.com") { _ in }
        #expect(a === views.view(of: host, sni: "a.example.com") { _ in })
        #expect(a.stats === host.stats && a.outlier === host.outlier)
        #expect(a.sni == "a.example.com" && a !== host)
        var evicted = 0
        for index in 0..<(SNIHostViews.limit + 10) {
            _ = views.view(of: host, sni: "n\(index).example.com") { _ in evicted += 1 }
        }
        #expect(evicted >= SNIHostViews.limit / 4, "the oldest views go, each one reported for its idle connections")
    }
}
