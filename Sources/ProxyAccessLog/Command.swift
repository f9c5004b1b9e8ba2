import Foundation
import ProxyCore

/// One command operator of an access log format, with its arguments.
struct Command: Sendable {
    enum Value {
        case none
        case number(Int64)
        case string(String)
    }

    enum Kind: Sendable {
        case startTime(StartTimeFormat)
        case requestHeader(String, alternative: String?)
        case responseHeader(String, alternative: String?)
        case trailer(String, alternative: String?)
        case protocolName, responseCode, responseCodeDetails, responseFlags, bytesReceived, bytesSent
        case duration, requestDuration, responseDuration
        case upstreamHost, upstreamCluster, upstreamLocalAddress, upstreamTransportFailureReason
        case downstreamRemoteAddress, downstreamRemoteAddressWithoutPort, downstreamLocalAddress
        case downstreamLocalAddressWithoutPort, downstreamPeerAddress
        case routeName, connectionID, requestedServerName, hostname
        case downstreamPeerURISAN, downstreamLocalURISAN, downstreamPeerDNSSAN, downstreamPeerSubject
        case downstreamLocalSubject, downstreamTLSVersion, downstreamPeerFingerprint256, downstreamPeerSerial
    }

    let kind: Kind
    /// `:N` after the operator: the value is cut to N characters.
    let maxLength: Int?

    private static let simple: [String: Kind] = [
        "PROTOCOL": .protocolName, "RESPONSE_CODE": .responseCode, "RESPONSE_CODE_DETAILS": .responseCodeDetails,
        "RESPONSE_FLAGS": .responseFlags, "BYTES_RECEIVED": .bytesReceived, "BYTES_SENT": .bytesSent,
        "DURATION": .duration, "REQUEST_DURATION": .requestDuration, "RESPONSE_DURATION": .responseDuration,
        "UPSTREAM_HOST": .upstreamHost, "UPSTREAM_CLUSTER": .upstreamCluster,
        "UPSTREAM_LOCAL_ADDRESS": .upstreamLocalAddress,
        "UPSTREAM_TRANSPORT_FAILURE_REASON": .upstreamTransportFailureReason,
        "DOWNSTREAM_REMOTE_ADDRESS": .downstreamRemoteAddress,
        "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": .downstreamRemoteAddressWithoutPort,
        "DOWNSTREAM_DIRECT_REMOTE_ADDRESS": .downstreamPeerAddress,
        "DOWNSTREAM_LOCAL_ADDRESS": .downstreamLocalAddress,
        "DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": .downstreamLocalAddressWithoutPort,
        "ROUTE_NAME": .routeName, "CONNECTION_ID": .connectionID, "REQUESTED_SERVER_NAME": .requestedServerName,
        "HOSTNAME": .hostname,
        "DOWNSTREAM_PEER_URI_SAN": .downstreamPeerURISAN, "DOWNSTREAM_LOCAL_URI_SAN": .downstreamLocalURISAN,
        "DOWNSTREAM_PEER_DNS_SAN": .downstreamPeerDNSSAN, "DOWNSTREAM_PEER_SUBJECT": .downstreamPeerSubject,
        "DOWNSTREAM_LOCAL_SUBJECT": .downstreamLocalSubject, "DOWNSTREAM_TLS_VERSION": .downstreamTLSVersion,
        "DOWNSTREAM_PEER_FINGERPRINT_256": .downstreamPeerFingerprint256,
        "DOWNSTREAM_PEER_SERIAL": .downstreamPeerSerial,
    ]

    /// Parses the operator starting at `chars[start]` (a `%`); nil when the text there is no operator.
    /// Throws for a well-formed operator meshproxy does not know, as Envoy refuses the config.
    static func parse(_ chars: [Character], from start: Int) throws -> (Command, Int)? {
        var index = start + 1
        var name = ""
        while index < chars.count, chars[index].isUppercase || chars[index].isNumber || chars[index] == "_" {
            name.append(chars[index])
            index += 1
        }
        guard !name.isEmpty, index < chars.count else { return nil }
        var argument: String?
        if chars[index] == "(" {
            guard let close = chars[index...].firstIndex(of: ")") else { return nil }
            argument = String(chars[(index + 1)..<close])
            index = close + 1
        }
        var maxLength: Int?
        if index < chars.count, chars[index] == ":" {
            var digits = ""
            index += 1
            while index < chars.count, chars[index].isNumber {
                digits.append(chars[index])
                index += 1
            }
            guard let length = Int(digits) else { return nil }
            maxLength = length
        }
        guard index < chars.count, chars[index] == "%" else { return nil }
        let kind: Kind
        switch name {
        case "START_TIME":
            kind = .startTime(StartTimeFormat(argument ?? ""))
        case "REQ", "RESP", "TRAILER":
            guard let argument, !argument.isEmpty else {
                throw AccessLogFormatError(description: "Invalid header configuration. Format string contains empty header for \(name).")
            }
            let parts = argument.split(separator: "?", maxSplits: 1).map { $0.lowercased() }
            let main = parts[0]
            let alternative = parts.count > 1 ? parts[1] : nil
            switch name {
            case "REQ": kind = .requestHeader(main, alternative: alternative)
            case "RESP": kind = .responseHeader(main, alternative: alternative)
            default: kind = .trailer(main, alternative: alternative)
            }
        default:
            guard let known = simple[name] else {
                throw AccessLogFormatError(description: "Not supported field in StreamInfo: \(name)")
            }
            kind = known
        }
        return (Command(kind: kind, maxLength: maxLength), index + 1)
    }

    func value(_ entry: AccessLogEntry) -> Value {
        let raw = rawValue(entry)
        guard let maxLength, case .string(let text) = raw, text.count > maxLength else { return raw }
        return .string(String(text.prefix(maxLength)))
    }

    private static let hostName = ProcessInfo.processInfo.hostName

    private func rawValue(_ entry: AccessLogEntry) -> Value {
        func string(_ text: String?) -> Value { text.map { .string($0) } ?? .none }
        func number(_ value: Int64?) -> Value { value.map { .number($0) } ?? .none }
        switch kind {
        case .startTime(let format): return .string(format.render(entry.startTime))
        case .requestHeader(let name, let alternative):
            return string(entry.requestHeader(name) ?? alternative.flatMap(entry.requestHeader))
        case .responseHeader(let name, let alternative):
            return string(entry.responseHeader(name) ?? alternative.flatMap(entry.responseHeader))
        case .trailer(let name, let alternative):
            return string(entry.responseTrailers?.first(name: name)
                ?? alternative.flatMap { entry.responseTrailers?.first(name: $0) })
        case .protocolName: return string(entry.protocolName)
        // Envoy prints 0 for a stream that got no response.
        case .responseCode: return .number(Int64(entry.responseCode))
        case .responseCodeDetails: return string(entry.responseCodeDetails)
        case .responseFlags: return .string(entry.responseFlags.description)
        case .bytesReceived: return .number(Int64(entry.bytesReceived))
        case .bytesSent: return .number(Int64(entry.bytesSent))
        case .duration: return number(entry.durationMs)
        case .requestDuration: return number(entry.requestDurationMs)
        case .responseDuration: return number(entry.responseDurationMs)
        case .upstreamHost: return string(entry.upstreamHost)
        case .upstreamCluster: return string(entry.upstreamCluster)
        case .upstreamLocalAddress: return string(entry.upstreamLocalAddress)
        case .upstreamTransportFailureReason: return string(entry.upstreamTransportFailureReason)
        case .downstreamRemoteAddress, .downstreamPeerAddress: return string(entry.downstreamRemoteAddress)
        case .downstreamRemoteAddressWithoutPort: return string(entry.downstreamRemoteAddress.map(AccessLogEntry.withoutPort))
        case .downstreamLocalAddress: return string(entry.downstreamLocalAddress)
        case .downstreamLocalAddressWithoutPort: return string(entry.downstreamLocalAddress.map(AccessLogEntry.withoutPort))
        case .routeName: return string(entry.routeName)
        case .connectionID: return number(entry.connectionID.map { Int64(truncatingIfNeeded: $0) })
        case .requestedServerName: return .none
        case .hostname: return .string(Self.hostName)
        // Envoy joins several SANs with commas and prints `-` for a plaintext connection or no value.
        case .downstreamPeerURISAN: return tls(entry) { $0.peerURISANs.joined(separator: ",") }
        case .downstreamLocalURISAN: return tls(entry) { $0.localURISANs.joined(separator: ",") }
        case .downstreamPeerDNSSAN: return tls(entry) { $0.peerDNSSANs.joined(separator: ",") }
        case .downstreamPeerSubject: return tls(entry) { $0.peerSubject }
        case .downstreamLocalSubject: return tls(entry) { $0.localSubject }
        case .downstreamTLSVersion: return tls(entry) { $0.version }
        case .downstreamPeerFingerprint256: return tls(entry) { $0.peerFingerprint256 }
        case .downstreamPeerSerial: return tls(entry) { $0.peerSerial }
        }
    }

    private func tls(_ entry: AccessLogEntry, _ field: (DownstreamTLSInfo) -> String) -> Value {
        guard let info = entry.downstreamTLS else { return .none }
        let text = field(info)
        return text.isEmpty ? .none : .string(text)
    }
}
