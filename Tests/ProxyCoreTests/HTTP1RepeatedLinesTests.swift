import Testing
@testable import ProxyCore

/// What a connection's parser keeps of the last head's lines for the next.
@Suite struct HTTP1RepeatedLinesTests {
    func parse(_ head: String, _ repeated: inout HTTP1RepeatedLines) throws -> [(String, String)] {
        var framing = HTTP1HeadFraming()
        let bytes = Array(head.utf8)
        let parsed = try bytes.withUnsafeBytes { try HTTP1Syntax.parseFields($0, from: 0, framing: &framing, repeated: &repeated) }
        return try #require(parsed).fields
    }

    @Test func aLineInItsPlaceAgainTakesTheKeptField() throws {
        var repeated = HTTP1RepeatedLines()
        let value = String(repeating: "v", count: 40)
        _ = try parse("A: \(value)\r\nB: 1\r\n\r\n", &repeated)
        let line = Array("A: \(value)".utf8)
        let kept = try #require(line.withUnsafeBufferPointer { repeated.field(at: 0, ifSameAs: $0) })
        #expect(kept == ("a", value))
        #expect(line.withUnsafeBufferPointer { repeated.field(at: 1, ifSameAs: $0) } == nil, "another place")
        #expect(Array("a: \(value)".utf8).withUnsafeBufferPointer { repeated.field(at: 0, ifSameAs: $0) } == nil,
                "the name in another case")
        #expect(repeated.hasLines(2))

        let fields = try parse("A: \(value)\r\nB: 2\r\nC: 3\r\n\r\n", &repeated)
        #expect(fields.map { "\($0)=\($1)" } == ["a=\(value)", "b=2", "c=3"])
        #expect(repeated.hasLines(3), "the new head's lines are kept")
    }

    @Test func aLargeHeadIsNotKept() throws {
        var repeated = HTTP1RepeatedLines()
        _ = try parse("A: 1\r\n\r\n", &repeated)
        #expect(repeated.hasLines(1))
        let cookie = String(repeating: "c", count: HTTP1RepeatedLines.keptLimit)
        let fields = try parse("Cookie: \(cookie)\r\n\r\n", &repeated)
        #expect(fields.map { $0.0 } == ["cookie"])
        #expect(repeated.hasLines(0), "nothing held for an idle connection")
    }

    @Test func trailersKeepNothing() throws {
        var none = HTTP1RepeatedLines.none
        _ = try parse("A: 1\r\n\r\n", &none)
        #expect(none.hasLines(0))
    }
}
