import Foundation
import NIOCore
import NIOHTTP1
import ProxyAccessLog
import ProxyCore

/// What the access logs need about one stream beyond what the router keeps anyway; collected only
/// when the connection manager has access loggers, so streams without them pay nothing.
struct StreamLog {
    let startTime = Date()
    var bytesReceived: UInt64 = 0
    var bytesSent: UInt64 = 0
    var requestEnd: NIODeadline?
    var firstUpstreamByte: NIODeadline?
    var responseHeaders: HTTPHeaders?
    var responseCode = 0
    var details: String?
    var upstreamHost: String?
    var upstreamLocalAddress: String?
    /// The x-request-id sent upstream (generated or marked by tracing), when it differs from the client's.
    var requestID: String?
}


/// The wall-clock time, for files that cannot import Foundation (its `Host` would shadow ours).
func wallClockNow() -> Date { Date() }
