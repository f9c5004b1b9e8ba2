import Foundation
import NIOSSL
import XDSResource

extension TLSContext {
    /// Envoy's `/certs` body for `contexts`, compact (the admin pretty-prints it): per context the
    /// first trusted CA and the leaf of its certificate chain, with serial, SANs and validity. Every
    /// field is printed, empty lists and zero days included, as Envoy prints them.
    public static func certsJSON(_ contexts: [TLSContext], now: Date = Date()) -> String {
        var out = "{\"certificates\":["
        for (index, context) in contexts.enumerated() {
            if index > 0 { out += "," }
            out += "{\"ca_cert\":["
            if let ca = context.trustedCA.first { appendDetails(ca, path: context.caSource, now: now, to: &out) }
            out += "],\"cert_chain\":["
            if let pair = context.certificates.first, let leaf = pair.chain.first {
                appendDetails(leaf, path: pair.chainSource, now: now, to: &out)
            }
            out += "]}"
        }
        return out + "]}"
    }

    private static func appendDetails(_ certificate: NIOSSLCertificate, path: String, now: Date, to out: inout String) {
        guard let details = try? CertificateDetails(certificate) else { return }
        // As BoringSSL's BN_bn2hex prints it: whole bytes, without the sign byte's leading zeros.
        var serial = Substring(details.serialNumber)
        while serial.hasPrefix("00"), serial.count > 2 { serial = serial.dropFirst(2) }
        out += "{\"path\":"
        JSONText.appendQuoted(path, to: &out)
        out += ",\"serial_number\":"
        JSONText.appendQuoted(String(serial), to: &out)
        out += ",\"subject_alt_names\":["
        let names = details.dnsNames.map { ("dns", $0) } + details.uris.map { ("uri", $0) }
            + details.ipAddresses.map { ("ip_address", $0) }
        for (index, (kind, value)) in names.enumerated() {
            out += index > 0 ? ",{\"\(kind)\":" : "{\"\(kind)\":"
            JSONText.appendQuoted(value, to: &out)
            out += "}"
        }
        let format = ISO8601DateFormatter()
        out += "],\"days_until_expiration\":\"\(details.daysUntilExpiration(now: now))\""
        out += ",\"valid_from\":\"\(format.string(from: details.notBefore))\""
        out += ",\"expiration_time\":\"\(format.string(from: details.notAfter))\"}"
    }
}
