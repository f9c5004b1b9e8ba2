import NIOHPACK
import Testing
@testable import ProxyHTTP

/// RFC 9113 § 8.2-8.3 (and RFC 8441 § 4) on request header blocks, as the downstream reader applies them.
@Suite struct HTTP2RequestHeaderValidationTests {
    typealias Failure = HTTP2RequestHeaderValidation.Failure
    static let base: [(String, String)] = [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")]

    func check(_ fields: [(String, String)], extendedConnect: Bool = false) -> Failure? {
        do {
            try HTTP2RequestHeaderValidation.validateRequest(HPACKHeaders(fields), extendedConnect: extendedConnect)
            return nil
        } catch {
            return error
        }
    }

    @Test func wellFormedRequestsPass() {
        #expect(check(Self.base + [("te", "trailers"), ("x-a", "b c\t!"), ("accept", "*/*")]) == nil)
        #expect(check([(":method", "GET"), (":scheme", "http"), (":path", "/")]) == nil, ":authority is optional")
        #expect(check([(":method", "CONNECT"), (":authority", "a:443")]) == nil)
        #expect(check([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"), (":path", "/chat"),
                       (":authority", "a")], extendedConnect: true) == nil)
        #expect(check(Self.base + [("x-utf8", "caf\u{e9}")]) == nil, "obs-text is allowed in values")
    }

    @Test func fieldNamesAndValues() {
        #expect(check(Self.base + [("X-Upper", "1")]) == .invalidFieldName("X-Upper"))
        #expect(check(Self.base + [("a b", "1")]) == .invalidFieldName("a b"))
        #expect(check(Self.base + [("", "1")]) == .invalidFieldName(""))
        #expect(check(Self.base + [("x-a", "a\rb")]) == .invalidFieldValue(name: "x-a"))
        #expect(check(Self.base + [("x-a", "a\nb")]) == .invalidFieldValue(name: "x-a"))
        #expect(check(Self.base + [("x-a", "a\u{0}b")]) == .invalidFieldValue(name: "x-a"))
        for name in ["connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade"] {
            #expect(check(Self.base + [(name, "x")]) == .connectionSpecificField(name))
        }
        #expect(check(Self.base + [("te", "gzip")]) == .connectionSpecificField("te"))
    }

    @Test func pseudoHeaderFields() {
        #expect(check([(":method", "GET"), ("x-a", "1"), (":path", "/"), (":scheme", "http")])
            == .pseudoHeaderAfterRegularField(":path"))
        #expect(check(Self.base + [(":status", "200")]) == .pseudoHeaderNotAllowed(":status"))
        #expect(check(Self.base + [(":foo", "1")]) == .pseudoHeaderNotAllowed(":foo"))
        #expect(check(Self.base + [(":protocol", "websocket")]) == .pseudoHeaderNotAllowed(":protocol"))
        #expect(check(Self.base + [(":protocol", "websocket")], extendedConnect: true) == .pseudoHeaderNotAllowed(":protocol"),
                "only a CONNECT may carry :protocol")
        #expect(check(Self.base + [(":path", "/x")]) == .duplicatePseudoHeader(":path"))
        #expect(check([(":method", "GET"), (":scheme", "http"), (":path", "")]) == .emptyPath)
        #expect(check([(":method", "GET"), (":scheme", "http"), (":path", "/a b")]) == .invalidFieldValue(name: ":path"))
        #expect(check([(":method", "GET"), (":path", "/")]) == .missingPseudoHeader(":scheme"))
        #expect(check([(":scheme", "http"), (":path", "/")]) == .missingPseudoHeader(":method"))
        #expect(check([(":method", "GET"), (":scheme", "http")]) == .missingPseudoHeader(":path"))
        #expect(check([(":method", "CONNECT"), (":authority", "a:443"), (":path", "/")]) == .pseudoHeaderNotAllowed(":path"))
        #expect(check([(":method", "CONNECT")]) == .missingPseudoHeader(":authority"))
        #expect(check([(":method", "CONNECT"), (":protocol", "websocket"), (":authority", "a")], extendedConnect: true)
            == .missingPseudoHeader(":scheme"))
    }

    @Test func trailersCarryNoPseudoHeaderFields() {
        #expect(throws: Failure.pseudoHeaderNotAllowed(":path")) {
            try HTTP2RequestHeaderValidation.validateTrailers(HPACKHeaders([("grpc-status", "0"), (":path", "/")]))
        }
        #expect(throws: Failure.connectionSpecificField("connection")) {
            try HTTP2RequestHeaderValidation.validateTrailers(HPACKHeaders([("connection", "close")]))
        }
        #expect(throws: Never.self) {
            try HTTP2RequestHeaderValidation.validateTrailers(HPACKHeaders([("grpc-status", "0"), ("x-a", "b")]))
        }
    }
}
