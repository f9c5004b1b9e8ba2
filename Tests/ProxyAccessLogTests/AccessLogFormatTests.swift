import Foundation
import NIOHTTP1
import ProxyCore
import Testing
@testable import ProxyAccessLog

/// Golden tests of the command operators and filters.
@Suite struct AccessLogFormatTests {
    static func entry() -> AccessLogEntry {
        var entry = AccessLogEntry(startTime: Date(timeIntervalSince1970: 1_764_071_626.125))
        entry.method = "POST"
        entry.path = "/api/v1/items?x=1"
        entry.authority = "example.com"
        entry.requestHeaders = HTTPHeaders([("Host", "example.com"), ("User-Agent", "curl/8"),
                                            ("X-Request-Id", "abc-123"), ("x-forwarded-for", "10.0.0.9")])
        entry.protocolName = "HTTP/1.1"
        entry.responseCode = 503
        entry.responseCodeDetails = "no_healthy_upstream"
        entry.responseFlags = .noHealthyUpstream
        entry.bytesReceived = 154
        entry.bytesSent = 19
        entry.durationMs = 226
        entry.requestDurationMs = 3
        entry.responseHeaders = HTTPHeaders([("x-envoy-upstream-service-time", "100"), ("content-type", "text/plain")])
        entry.responseTrailers = HTTPHeaders([("grpc-status", "14")])
        entry.upstreamHost = "10.0.2.1:80"
        entry.upstreamCluster = "backend"
        entry.downstreamRemoteAddress = "127.0.0.1:51000"
        entry.downstreamLocalAddress = "[::1]:10000"
        entry.routeName = "main"
        entry.connectionID = 42
        return entry
    }

    func render(_ format: String, _ entry: AccessLogEntry = entry()) throws -> String {
        try AccessLogFormat(text: format).render(entry)
    }

    @Test func envoysDefaultFormat() throws {
        #expect(AccessLogFormat.default.render(Self.entry()) ==
            "[2025-11-25T11:53:46.125Z] \"POST /api/v1/items?x=1 HTTP/1.1\" 503 UH 154 19 226 100 \"10.0.0.9\" \"curl/8\" \"abc-123\" \"example.com\" \"10.0.2.1:80\"\n")
    }

    @Test(arguments: [
        ("%REQ(:METHOD)% %REQ(:PATH)% %REQ(:AUTHORITY)%", "POST /api/v1/items?x=1 example.com"),
        ("%REQ(X-MISSING?USER-AGENT)%", "curl/8"),
        ("%REQ(USER-AGENT):4%", "curl"),
        ("%REQ(X-MISSING)%", "-"),
        ("%RESP(CONTENT-TYPE)% %RESP(:STATUS)%", "text/plain 503"),
        ("%TRAILER(GRPC-STATUS)%", "14"),
        ("%RESPONSE_CODE% %RESPONSE_CODE_DETAILS% %RESPONSE_FLAGS%", "503 no_healthy_upstream UH"),
        ("%BYTES_RECEIVED%/%BYTES_SENT% %DURATION% %REQUEST_DURATION% %RESPONSE_DURATION%", "154/19 226 3 -"),
        ("%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS%", "10.0.2.1:80 backend -"),
        ("%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "127.0.0.1:51000 127.0.0.1"),
        ("%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%", "::1"),
        ("%ROUTE_NAME% %CONNECTION_ID% %PROTOCOL%", "main 42 HTTP/1.1"),
        ("100% literal %", "100% literal %"),
        ("%START_TIME(%Y/%m/%d %H:%M:%S.%3f)%", "2025/11/25 11:53:46.125"),
        ("%START_TIME(%s.%6f)%", "1764071626.125000"),
        ("%START_TIME(%E3S)%", "46.125"),
    ])
    func operators(format: String, expected: String) throws {
        #expect(try render(format) == expected)
    }

    @Test func unknownOperatorsAreRefusedInEnvoysWords() {
        let error = #expect(throws: AccessLogFormatError.self) { try AccessLogFormat(text: "%NOT_A_THING%") }
        #expect(error?.description == "Not supported field in StreamInfo: NOT_A_THING")
    }

    @Test func jsonTypesNumbersAndNulls() throws {
        let template = AccessLogFormat.JSONTemplate.object([
            ("code", .format(try Segment.parse("%RESPONSE_CODE%"))),
            ("flags", .format(try Segment.parse("%RESPONSE_FLAGS%"))),
            ("line", .format(try Segment.parse("%REQ(:METHOD)% \"%REQ(:PATH)%\""))),
            ("missing", .format(try Segment.parse("%UPSTREAM_LOCAL_ADDRESS%"))),
            ("nested", .object([("cluster", .format(try Segment.parse("%UPSTREAM_CLUSTER%")))])),
        ])
        let line = AccessLogFormat(json: template, omitEmptyValues: false).render(Self.entry())
        #expect(line == #"{"code":503,"flags":"UH","line":"POST \"/api/v1/items?x=1\"","missing":null,"nested":{"cluster":"backend"}}"# + "\n")
        let omitted = AccessLogFormat(json: template, omitEmptyValues: true).render(Self.entry())
        #expect(!omitted.contains("missing"))
    }

    @Test func filters() {
        let entry = Self.entry()
        let never: () -> UInt64 = { 99 }
        #expect(AccessLogFilter.statusCode(.greaterOrEqual, 500).matches(entry, random: never))
        #expect(!AccessLogFilter.statusCode(.lessOrEqual, 499).matches(entry, random: never))
        #expect(AccessLogFilter.duration(.greaterOrEqual, 200).matches(entry, random: never))
        #expect(AccessLogFilter.responseFlags([]).matches(entry, random: never))
        #expect(!AccessLogFilter.responseFlags(.noRouteFound).matches(entry, random: never))
        #expect(AccessLogFilter.and([.notHealthCheck, .statusCode(.equal, 503)]).matches(entry, random: never))
        #expect(AccessLogFilter.or([.statusCode(.equal, 200), .duration(.greaterOrEqual, 100)]).matches(entry, random: never))
        #expect(!AccessLogFilter.runtime(numerator: 50, denominator: 100).matches(entry, random: never))
        #expect(AccessLogFilter.runtime(numerator: 50, denominator: 100).matches(entry, random: { 149 }))
    }
}
