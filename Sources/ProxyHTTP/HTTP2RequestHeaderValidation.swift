import NIOHPACK
import ProxyCore

/// RFC 9113 § 8.2 and § 8.3 on a downstream request's header block and its trailers: what makes
/// an HTTP/2 request malformed. NIO's HTTP/2 handler can check the same (its header block
/// validation), but it checks every block a connection sends as well as those it receives, and
/// the two took ~22k of the ~205k instructions an h2c request cost (BENCHMARKS.md); what
/// meshproxy sends is built from fields its HTTP/1.1 parser accepted or its own code wrote. So
/// downstream connections run with NIO's check off and the request reader runs this one.
enum HTTP2RequestHeaderValidation {
    enum Failure: Error, Equatable {
        /// Not a token, or with an upper-case letter (HTTP/2 names are lower case).
        case invalidFieldName(String)
        /// A NUL, CR or LF in a value, or (in a pseudo-header field) any control byte or space.
        case invalidFieldValue(name: String)
        /// `connection`, `proxy-connection`, `keep-alive`, `transfer-encoding`, `upgrade`, or a
        /// `te` other than `trailers`.
        case connectionSpecificField(String)
        case pseudoHeaderAfterRegularField(String)
        /// Unknown, a response's (`:status`), or not allowed in this request (`:path` on a
        /// CONNECT, `:protocol` without extended CONNECT), or any in trailers.
        case pseudoHeaderNotAllowed(String)
        case duplicatePseudoHeader(String)
        case missingPseudoHeader(String)
        case emptyPath
    }

    private struct Pseudo: OptionSet {
        let rawValue: UInt8
        static let method = Pseudo(rawValue: 1 << 0)
        static let scheme = Pseudo(rawValue: 1 << 1)
        static let authority = Pseudo(rawValue: 1 << 2)
        static let path = Pseudo(rawValue: 1 << 3)
        static let `protocol` = Pseudo(rawValue: 1 << 4)

        init(rawValue: UInt8) { self.rawValue = rawValue }

        init?(name: String) {
            switch name {
            case ":method": self = .method
            case ":scheme": self = .scheme
            case ":authority": self = .authority
            case ":path": self = .path
            case ":protocol": self = .protocol
            default: return nil
            }
        }
    }

    /// A request's HEADERS. `extendedConnect`: the connection offered RFC 8441's `:protocol`.
    static func validateRequest(_ block: HPACKHeaders, extendedConnect: Bool) throws(Failure) {
        var seen: Pseudo = []
        var regularSeen = false
        var isConnect = false
        for (name, value, _) in block {
            if name.utf8.first == UInt8(ascii: ":") {
                guard !regularSeen else { throw .pseudoHeaderAfterRegularField(name) }
                guard let pseudo = Pseudo(name: name), pseudo != .protocol || extendedConnect else {
                    throw .pseudoHeaderNotAllowed(name)
                }
                guard !seen.contains(pseudo) else { throw .duplicatePseudoHeader(name) }
                seen.insert(pseudo)
                guard isValidPseudoHeaderValue(value) else { throw .invalidFieldValue(name: name) }
                if pseudo == .path, value.isEmpty { throw .emptyPath }
                if pseudo == .method { isConnect = value == "CONNECT" }
            } else {
                regularSeen = true
                try validateRegularField(name, value)
                if name == "te", value != "trailers" { throw .connectionSpecificField(name) }
            }
        }
        // A CONNECT names only where to (RFC 9113 § 8.5); an extended CONNECT (RFC 8441 § 4) is a
        // request like others with `:protocol`, which no other request may carry.
        let (allowed, required): (Pseudo, Pseudo) =
            if isConnect, !seen.contains(.protocol) { ([.method, .authority], [.method, .authority]) }
            else if isConnect { ([.method, .scheme, .authority, .path, .protocol], [.method, .scheme, .path]) }
            else { ([.method, .scheme, .authority, .path], [.method, .scheme, .path]) }
        if let extra = Self.names.first(where: { seen.contains($0.pseudo) && !allowed.contains($0.pseudo) }) {
            throw .pseudoHeaderNotAllowed(extra.name)
        }
        if let missing = Self.names.first(where: { required.contains($0.pseudo) && !seen.contains($0.pseudo) }) {
            throw .missingPseudoHeader(missing.name)
        }
    }

    /// A request's trailers: regular fields only.
    static func validateTrailers(_ block: HPACKHeaders) throws(Failure) {
        for (name, value, _) in block {
            guard name.utf8.first != UInt8(ascii: ":") else { throw .pseudoHeaderNotAllowed(name) }
            try validateRegularField(name, value)
        }
    }

    private static let names: [(pseudo: Pseudo, name: String)] = [
        (.method, ":method"), (.scheme, ":scheme"), (.authority, ":authority"), (.path, ":path"), (.protocol, ":protocol"),
    ]

    private static func validateRegularField(_ name: String, _ value: String) throws(Failure) {
        guard isValidName(name) else { throw .invalidFieldName(name) }
        guard ProxiedResponseHeader(lowercased: name) != .hopByHop else { throw .connectionSpecificField(name) }
        guard isValidValue(value) else { throw .invalidFieldValue(name: name) }
    }

    /// A token (RFC 9110 § 5.1) without upper-case letters.
    static func isValidName(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            !bytes.isEmpty && bytes.allSatisfy { HTTP1HeaderValidation.isTokenByte($0) && !(0x41...0x5A).contains($0) }
        }
    }

    /// RFC 9113 § 8.2.1: no NUL, LF or CR anywhere in a value.
    static func isValidValue(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in !bytes.contains { $0 == 0 || $0 == 0x0A || $0 == 0x0D } }
    }

    /// No control byte, space or DEL: a pseudo-header's value becomes part of the HTTP/1.1 request
    /// line or `host`, where one would split or reshape it.
    static func isValidPseudoHeaderValue(_ value: String) -> Bool {
        var value = value
        return value.withUTF8 { bytes in !bytes.contains { $0 <= 0x20 || $0 == 0x7F } }
    }
}
