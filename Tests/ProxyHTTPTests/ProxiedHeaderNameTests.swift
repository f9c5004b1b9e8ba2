import ProxyCore
import Testing
@testable import ProxyHTTP

/// The router's header classification by name, and the ASCII lower-casing it runs on.
@Suite struct ProxiedHeaderNameTests {
    @Test func requestHeadersTheRouterConsumesOrReads() {
        let consumed = ["connection", "keep-alive", "proxy-connection", "upgrade", "expect", "http2-settings",
                        "x-envoy-retry-on", "x-envoy-retry-grpc-on", "x-envoy-max-retries",
                        "x-envoy-upstream-rq-timeout-ms", "x-envoy-upstream-rq-per-try-timeout-ms",
                        "x-envoy-expected-rq-timeout-ms"]
        for name in consumed { #expect(ProxiedRequestHeader(lowercased: name) == .consumed, "\(name)") }
        #expect(ProxiedRequestHeader(lowercased: "te") == .te)
        #expect(ProxiedRequestHeader(lowercased: "x-forwarded-proto") == .forwardedProto)
        #expect(ProxiedRequestHeader(lowercased: "x-request-id") == .requestID)
        #expect(ProxiedRequestHeader(lowercased: "x-forwarded-client-cert") == .forwardedClientCert)
        // Names of the same lengths as the ones above, and ones near them.
        for name in ["tx", "accept", "referer", "user-agent", "content-type", "accept-language", "x-envoy-retry-ox",
                     "transfer-encoding", "x-envoy-max-retriez", "x-envoy-upstream-rq-timeout-mz", "", "host"] {
            #expect(ProxiedRequestHeader(lowercased: name) == .other, "\(name)")
        }
    }

    @Test func responseHeadersTheRouterDropsOrReplaces() {
        for name in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"] {
            #expect(ProxiedResponseHeader(lowercased: name) == .hopByHop, "\(name)")
        }
        #expect(ProxiedResponseHeader(lowercased: "server") == .server)
        #expect(ProxiedResponseHeader(lowercased: "date") == .date)
        for name in ["vary", "etag", "content-length", "x-forwarded-proto", "set-cookie", "servers"] {
            #expect(ProxiedResponseHeader(lowercased: name) == .other, "\(name)")
        }
    }

    @Test func comparesWithALowercaseLiteralIgnoringASCIICaseOnly() {
        #expect("content-length".isASCIICaseInsensitiveEqual(to: "content-length"))
        #expect("Content-Length".isASCIICaseInsensitiveEqual(to: "content-length"))
        #expect("TRANSFER-ENCODING".isASCIICaseInsensitiveEqual(to: "transfer-encoding"))
        #expect(!"content-lengti".isASCIICaseInsensitiveEqual(to: "content-length"))
        #expect(!"content-length ".isASCIICaseInsensitiveEqual(to: "content-length"), "longer")
        #expect(!"content-lengt".isASCIICaseInsensitiveEqual(to: "content-length"), "shorter")
        // Only A-Z fold: '@' and '[' sit next to them, and 0xC4 is not a letter here.
        #expect(!"@".isASCIICaseInsensitiveEqual(to: "`"))
        #expect(!"[".isASCIICaseInsensitiveEqual(to: "{"))
        #expect(!"\u{C4}".isASCIICaseInsensitiveEqual(to: "\u{E4}"))
        // A long string (not stored inline) takes the same path.
        let long = String(repeating: "Ab", count: 20)
        #expect(long.isASCIICaseInsensitiveEqual(to: "abababababababababababababababababababab"))
    }

    @Test func lowercasesASCIILettersOnly() {
        #expect("content-type".asciiLowercased() == "content-type")
        #expect("Content-Type".asciiLowercased() == "content-type")
        #expect("X-ENVOY-UPSTREAM-RQ-TIMEOUT-MS".asciiLowercased() == "x-envoy-upstream-rq-timeout-ms")
        #expect("X-Zürich_@[`{".asciiLowercased() == "x-zürich_@[`{")
        #expect("Ä".asciiLowercased() == "Ä")
        #expect("".asciiLowercased() == "")
    }
}
