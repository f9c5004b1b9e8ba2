import ProxyCore

/// `forward_client_cert_details` and `set_current_client_cert_details`: what becomes of a request's
/// `x-forwarded-client-cert` header, and what this proxy adds for an mTLS client.
public struct ForwardClientCert: Sendable, Equatable {
    public enum Mode: Sendable, Equatable {
        /// Remove the header (Envoy's default).
        case sanitize
        /// Forward it unchanged when the client is mTLS; remove it otherwise.
        case forwardOnly
        /// Append this hop's element when the client is mTLS; remove it otherwise.
        case appendForward
        /// Replace it with this hop's element when the client is mTLS; remove it otherwise.
        case sanitizeSet
        /// Forward it unchanged, whatever the connection.
        case alwaysForwardOnly
    }

    public struct Details: Sendable, Equatable {
        public var subject = false
        public var cert = false
        public var chain = false
        public var dns = false
        public var uri = false

        public init(subject: Bool = false, cert: Bool = false, chain: Bool = false, dns: Bool = false, uri: Bool = false) {
            self.subject = subject
            self.cert = cert
            self.chain = chain
            self.dns = dns
            self.uri = uri
        }
    }

    public var mode: Mode
    public var details: Details

    public init(mode: Mode = .sanitize, details: Details = Details()) {
        self.mode = mode
        self.details = details
    }

    public static let header = "x-forwarded-client-cert"

    public enum Action: Equatable {
        case remove
        case keep
        case append(String)
        case replace(String)
    }

    /// What to do with the incoming header for a request on a connection with `tls`.
    public func action(tls: DownstreamTLSInfo?) -> Action {
        let mutual = tls?.peerPresentedCertificate ?? false
        switch mode {
        case .sanitize: return .remove
        case .alwaysForwardOnly: return .keep
        case .forwardOnly: return mutual ? .keep : .remove
        case .appendForward: return mutual ? .append(element(tls!)) : .remove
        case .sanitizeSet: return mutual ? .replace(element(tls!)) : .remove
        }
    }

    /// This hop's element, in Envoy's key order: `By`, `Hash`, `Cert`, `Chain`, `Subject`, `URI`, `DNS`.
    func element(_ tls: DownstreamTLSInfo) -> String {
        var parts: [String] = []
        for uri in tls.localURISANs.prefix(1) { parts.append("By=" + uri) }
        parts.append("Hash=" + tls.peerFingerprint256)
        if details.cert { parts.append("Cert=\"" + Self.urlEncoded(tls.peerCertificatePEM) + "\"") }
        if details.chain { parts.append("Chain=\"" + Self.urlEncoded(tls.peerCertificatePEM) + "\"") }
        if details.subject { parts.append("Subject=\"" + tls.peerSubject.replacingOccurrences(of: "\"", with: "\\\"") + "\"") }
        if details.uri { for uri in tls.peerURISANs { parts.append("URI=" + uri) } }
        if details.dns { for name in tls.peerDNSSANs { parts.append("DNS=" + name) } }
        return parts.joined(separator: ";")
    }

    /// Percent-encodes everything but unreserved characters, as Envoy encodes the PEM.
    static func urlEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."),
                 UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
