import ProxyCore
/// What the router does with a header it forwards, decided from the lower-case name by its length
/// first: most names are then settled by one comparison or none, where a `Set` lookup hashed every
/// name of every request and response.
enum ProxiedRequestHeader: Equatable {
    /// Hop-by-hop, or read by this hop's router (retry and timeout overrides, `expect`): not forwarded.
    case consumed
    case forwardedClientCert
    case te
    case forwardedProto
    case requestID
    case other

    init(lowercased name: String) {
        switch name.utf8.count {
        case 2: self = name == "te" ? .te : .other
        case 6: self = name == "expect" ? .consumed : .other
        case 7: self = name == "upgrade" ? .consumed : .other
        case 10: self = name == "connection" || name == "keep-alive" ? .consumed : .other
        case 12: self = name == "x-request-id" ? .requestID : .other
        case 14: self = name == "http2-settings" ? .consumed : .other
        case 16: self = name == "proxy-connection" || name == "x-envoy-retry-on" ? .consumed : .other
        case 17: self = name == "x-forwarded-proto" ? .forwardedProto : .other
        case 19: self = name == "x-envoy-max-retries" ? .consumed : .other
        case 21: self = name == "x-envoy-retry-grpc-on" ? .consumed : .other
        case 23: self = name == ForwardClientCert.header ? .forwardedClientCert : .other
        // x-envoy-expected-rq-timeout-ms is set by this hop's router: a previous hop's is replaced.
        case 30: self = name == "x-envoy-upstream-rq-timeout-ms" || name == "x-envoy-expected-rq-timeout-ms" ? .consumed : .other
        case 38: self = name == "x-envoy-upstream-rq-per-try-timeout-ms" ? .consumed : .other
        default: self = .other
        }
    }
}

/// The same for a response header on its way downstream.
enum ProxiedResponseHeader: Equatable {
    /// Hop-by-hop: not forwarded. The same five names are RFC 9113 § 8.2.2's connection-specific
    /// fields, which an HTTP/2 message may not carry.
    case hopByHop
    case server
    case date
    case other

    init(lowercased name: String) {
        switch name.utf8.count {
        case 4: self = name == "date" ? .date : .other
        case 6: self = name == "server" ? .server : .other
        case 7: self = name == "upgrade" ? .hopByHop : .other
        case 10: self = name == "connection" || name == "keep-alive" ? .hopByHop : .other
        case 16: self = name == "proxy-connection" ? .hopByHop : .other
        case 17: self = name == "transfer-encoding" ? .hopByHop : .other
        default: self = .other
        }
    }
}
