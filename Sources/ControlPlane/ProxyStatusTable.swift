import Foundation

/// `meshd status`: the proxies in `/debug/syncz` as a table, like `istioctl proxy-status`, with the
/// time of each proxy's latest ACK and the NACK reason Istio's table lacks.
public enum ProxyStatusTable {
    static let types = ["CDS", "LDS", "EDS", "RDS", "SDS"]

    /// Renders the syncz document; `node` keeps only that proxy.
    public static func render(syncz: Data, node: String? = nil) throws -> String {
        guard let document = try JSONSerialization.jsonObject(with: syncz) as? [String: Any],
              let proxies = document["proxies"] as? [[String: Any]]
        else { throw CocoaError(.propertyListReadCorrupt) }
        var rows = [["NAME", "CLUSTER", "CLIENT"] + types + ["LAST ACK", "NACK"]]
        for proxy in proxies.sorted(by: { ($0["node_id"] as? String ?? "") < ($1["node_id"] as? String ?? "") }) {
            let id = proxy["node_id"] as? String ?? ""
            if let node, node != id { continue }
            let byType = proxy["types"] as? [String: [String: Any]] ?? [:]
            var cells = [id, proxy["cluster"] as? String ?? "", (proxy["client"] as? String ?? "").trimmingCharacters(in: .whitespaces)]
            var lastAck = ""
            var nacks: [String] = []
            for type in types {
                guard let status = byType[type] else { cells.append("NOT SENT"); continue }
                cells.append(status["status"] as? String ?? "?")
                if let acked = status["acked_at"] as? String, acked > lastAck { lastAck = acked }
                if let nack = status["last_nack"] as? String { nacks.append("\(type): \(nack)") }
            }
            cells.append(lastAck.isEmpty ? "-" : lastAck)
            cells.append(nacks.isEmpty ? "-" : nacks.joined(separator: "; "))
            rows.append(cells)
        }
        let widths = rows[0].indices.map { column in rows.map { $0[column].count }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 3, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n") + "\n"
    }
}
