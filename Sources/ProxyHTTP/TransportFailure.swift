#if canImport(Glibc)
import Glibc
#endif
import NIOCore

/// `%UPSTREAM_TRANSPORT_FAILURE_REASON%`: why a connection to the upstream failed, in Envoy's words
/// (a refused connect is `delayed connect error: Connection refused`); nil when the cause is not a
/// socket error.
enum TransportFailure {
    static func reason(_ error: any Error) -> String? {
        guard let io = error as? IOError else { return nil }
        return "delayed connect error: " + String(cString: strerror(io.errnoCode))
    }

    /// The reason as access logs and response details print it (spaces become underscores).
    static func logged(_ reason: String) -> String {
        reason.replacingOccurrences(of: " ", with: "_")
    }
}
