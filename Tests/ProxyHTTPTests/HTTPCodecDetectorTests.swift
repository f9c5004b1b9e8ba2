import NIOCore
import NIOEmbedded
import Testing
@testable import ProxyHTTP

/// The AUTO codec choice: HTTP/2's client preface or HTTP/1.1, decided from the first bytes.
@Suite struct HTTPCodecDetectorTests {
    /// Feeds `chunks` and returns which codec was installed (nil: still undecided) and the bytes passed on.
    func detect(_ chunks: [String]) throws -> (isHTTP2: Bool?, forwarded: String) {
        let decision = DecisionBox()
        let channel = EmbeddedChannel(handler: HTTPCodecDetector { _, isHTTP2 in decision.isHTTP2 = isHTTP2 })
        for chunk in chunks { try channel.writeInbound(ByteBuffer(string: chunk)) }
        var forwarded = ""
        while let buffer = try channel.readInbound(as: ByteBuffer.self) { forwarded += String(buffer: buffer) }
        return (decision.isHTTP2, forwarded)
    }

    final class DecisionBox: @unchecked Sendable { var isHTTP2: Bool? }

    static let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    @Test func http1IsChosenAtTheFirstByteThatDiffers() throws {
        let result = try detect(["GET / HTTP/1.1\r\n"])
        #expect(result.isHTTP2 == false)
        #expect(result.forwarded == "GET / HTTP/1.1\r\n")
    }

    @Test func postDiffersAtItsSecondByte() throws {
        let result = try detect(["P", "OST / HTTP/1.1\r\n"])
        #expect(result.isHTTP2 == false)
        #expect(result.forwarded == "POST / HTTP/1.1\r\n")
    }

    @Test func theH2cPrefaceChoosesHTTP2EvenWhenSplit() throws {
        let result = try detect([String(Self.preface.prefix(10)), String(Self.preface.dropFirst(10)) + "frames"])
        #expect(result.isHTTP2 == true)
        #expect(result.forwarded == Self.preface + "frames")
    }

    @Test func aPartialPrefaceWaits() throws {
        let result = try detect(["PRI * HTTP/2"])
        #expect(result.isHTTP2 == nil)
        #expect(result.forwarded.isEmpty)
    }
}
