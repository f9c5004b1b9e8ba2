import NIOHPACK

/// Which response headers the HPACK encoder of one downstream connection may add to its dynamic
/// table. Headers whose values change from response to response (`date` every second,
/// `x-envoy-upstream-service-time` and `x-request-id` nearly every time) are sent as literals without
/// indexing: indexed, each new value took a table entry and pushed the stable ones (`server`,
/// `content-type`) further down a table that the encoder searches linearly, name by name, for every
/// header of every response.
///
/// A literal still names its field by index when the name is in a table. `date` is in the static
/// table; the other two are not, so each is indexed once on a connection (one entry) and its later
/// values refer to that entry's name, where the name alone, Huffman-coded by NIO for every response,
/// cost ~4k instructions. The name is indexed again now and then, in case the entry was evicted.
/// Shared by the connection's streams; confined to its event loop.
final class HTTP2ResponseHeaderIndexing: @unchecked Sendable {
    /// Responses between two indexings of a volatile name: rare enough that its entries take little
    /// of the table, often enough that an evicted name is not spelled out for long.
    static let reindexInterval = 1024

    /// Per volatile name not in the static table: responses since it was last indexed.
    private var sinceIndexed = (requestID: Int.max, serviceTime: Int.max)

    /// How `name` (lower-case, as HTTP/2 sends it) goes out on this connection now.
    func indexing(ofLowercased name: String) -> HPACKIndexing {
        switch name.utf8.count {
        case 4 where name == "date": .nonIndexable
        case 12 where name == "x-request-id": Self.next(&sinceIndexed.requestID)
        case 29 where name == "x-envoy-upstream-service-time": Self.next(&sinceIndexed.serviceTime)
        default: .indexable
        }
    }

    private static func next(_ since: inout Int) -> HPACKIndexing {
        if since >= reindexInterval {
            since = 0
            return .indexable
        }
        since += 1
        return .nonIndexable
    }
}
