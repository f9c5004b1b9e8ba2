import Foundation
import Testing
@testable import ControlPlane

@Suite struct ProxyStatusTableTests {
    static let syncz = Data("""
    {"proxies": [
      {"node_id": "web-2", "cluster": "web", "client": "envoy 1.40.0", "types": {
        "CDS": {"status": "SYNCED", "acked_at": "2026-11-25T10:00:01.250Z", "last_nack": null},
        "RDS": {"status": "NACKED", "acked_at": "2026-11-25T10:00:02.000Z", "last_nack": "main: invalid regex"}}},
      {"node_id": "web-1", "cluster": "web", "client": "meshproxy 0.1.0", "types": {
        "CDS": {"status": "SYNCED", "acked_at": "2026-11-25T10:00:03.500Z", "last_nack": null}}}
    ]}
    """.utf8)

    @Test func oneRowPerProxySortedWithTheLatestAckAndNackReasons() throws {
        let lines = try ProxyStatusTable.render(syncz: Self.syncz).split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("NAME "))
        #expect(lines[1].hasPrefix("web-1 ") && lines[1].contains("meshproxy 0.1.0"))
        #expect(lines[1].contains("2026-11-25T10:00:03.500Z") && lines[1].hasSuffix("-"))
        #expect(lines[2].split(separator: " ", omittingEmptySubsequences: true).prefix(8).map(String.init)
            == ["web-2", "web", "envoy", "1.40.0", "SYNCED", "NOT", "SENT", "NOT"])
        #expect(lines[2].hasSuffix("RDS: main: invalid regex"))
        #expect(lines[2].contains("2026-11-25T10:00:02.000Z"))
    }

    @Test func filtersByNode() throws {
        let text = try ProxyStatusTable.render(syncz: Self.syncz, node: "web-2")
        #expect(text.split(separator: "\n").count == 2)
    }
}
