import NIOHPACK

/// Which response headers the HPACK encoder may add to its dynamic table. Headers whose values
/// change from response to response (`date` every second, `x-envoy-upstream-service-time` and
/// `x-request-id` nearly every time) are sent as literals without indexing: indexed, each new value
/// took a table entry and pushed the stable ones (`server`, `content-type`) further down a table that
/// the encoder searches linearly, name by name, for every header of every response.
enum HTTP2ResponseHeaderIndexing {
    /// Names as HTTP/2 sends them, lower-case.
    static func isVolatile(_ name: String) -> Bool {
        switch name.utf8.count {
        case 4: name == "date"
        case 12: name == "x-request-id"
        case 29: name == "x-envoy-upstream-service-time"
        default: false
        }
    }
}
