import Foundation
import NIOSSL
import SwiftASN1
import X509

/// What `/certs` and SAN checks need of a certificate, read once with swift-certificates.
public struct CertificateDetails: Sendable {
    /// Lower-case hex without leading zeros stripped, as Envoy prints serial numbers.
    public var serialNumber: String
    public var dnsNames: [String] = []
    public var uris: [String] = []
    public var emails: [String] = []
    public var ipAddresses: [String] = []
    public var notBefore: Date
    public var notAfter: Date
    public var subject: String

    public init(_ certificate: NIOSSLCertificate) throws {
        try self.init(der: try certificate.toDERBytes())
    }

    public init(der: [UInt8]) throws {
        let parsed = try Certificate(derEncoded: der)
        serialNumber = parsed.serialNumber.bytes.map { String(format: "%02x", $0) }.joined()
        notBefore = parsed.notValidBefore
        notAfter = parsed.notValidAfter
        subject = parsed.subject.description
        for name in (try? parsed.extensions.subjectAlternativeNames) ?? SubjectAlternativeNames() {
            switch name {
            case .dnsName(let value): dnsNames.append(value)
            case .uniformResourceIdentifier(let value): uris.append(value)
            case .rfc822Name(let value): emails.append(value)
            case .ipAddress(let octets): ipAddresses.append(Self.ipString(Array(octets.bytes)))
            default: break
            }
        }
    }

    func names(_ kind: SubjectAltNameMatcher.Kind) -> [String] {
        switch kind {
        case .dns: dnsNames
        case .uri: uris
        case .email: emails
        case .ipAddress: ipAddresses
        }
    }

    /// Whether any SAN matches any of `matchers` (true when there are none).
    public func matches(_ matchers: [SubjectAltNameMatcher]) -> Bool {
        matchers.isEmpty || matchers.contains { matcher in names(matcher.kind).contains(where: matcher.matches) }
    }

    /// Whole days left, as `days_until_expiration` counts them (never negative).
    public func daysUntilExpiration(now: Date = Date()) -> Int {
        max(0, Int(notAfter.timeIntervalSince(now) / 86_400))
    }

    static func ipString(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        guard bytes.count == 16 else { return bytes.map { String(format: "%02x", $0) }.joined() }
        var groups: [String] = []
        for index in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]), radix: 16))
        }
        return groups.joined(separator: ":")
    }
}
