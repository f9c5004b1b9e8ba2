import MeshTestSupport
import NIOCore
import NIOHTTP1
import ProxyCore
import Testing
@testable import ProxyHTTP

@Suite struct HTTP1RequestParserTests {
    /// Records a part: heads with their request line and whether they keep the connection.
    static func record(_ part: HTTP1RequestParser.Part, into transcript: inout PartTranscript) {
        switch part {
        case .head(let head, let keepAlive):
            transcript.head("\(head.method.rawValue) \(head.uri) \(head.version.major).\(head.version.minor) "
                + "[\(PartTranscript.fields(head.headers))]" + (keepAlive ? "" : " close"))
        case .body(let body): transcript.body(body)
        case .end(let trailers): transcript.end(trailers)
        }
    }

    /// Parses `text` in one piece, or split into pieces of `chunk` bytes; returns what is left unparsed too.
    func parse(_ text: String, chunk: Int? = nil) throws -> (transcript: PartTranscript, left: String) {
        var parser = HTTP1RequestParser()
        var transcript = PartTranscript()
        let left = try PartTranscript.feed(text, chunk: chunk) { pending in
            try parser.parse(&pending) { Self.record($0, into: &transcript) }
        }
        return (transcript, left)
    }

    func transcript(_ text: String) throws -> String {
        let parsed = try PartTranscript.everySplit { try parse(text, chunk: $0) }
        #expect(parsed.differingSplit == nil, "reads of \(parsed.differingSplit ?? 0) bytes parse otherwise")
        return parsed.transcript
    }

    @Test func aRequestWithoutBody() throws {
        #expect(try transcript("GET /a?b=c HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n")
            == "GET /a?b=c 1.1 [host=x,accept=*/*] | end")
    }

    @Test func pipelinedRequestsAndBareLineFeeds() throws {
        #expect(try transcript("GET /1 HTTP/1.1\nHost: x\n\nPOST /2 HTTP/1.1\r\ncontent-length: 3\r\n\r\nabcHEAD /3 HTTP/1.1\r\n\r\n")
            == "GET /1 1.1 [host=x] | end | POST /2 1.1 [content-length=3] | body abc | end | HEAD /3 1.1 [] | end")
    }

    /// Requests on a connection mostly repeat their lines: a line in its place again takes the last
    /// request's field, one that differs (by a byte, or by its name's case) is read anew, a request
    /// with fewer lines has only its own, and what repeated lines say about framing counts again.
    @Test func linesRepeatedFromTheLastRequest() throws {
        let first = "POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nab"
        let again = "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\ncd"
        let other = "POST /3 HTTP/1.1\r\nhost: x\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nefg"
        let fewer = "GET /4 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        #expect(try transcript(first + again + other + fewer)
            == "POST /1 1.1 [host=x,content-length=2,connection=keep-alive] | body ab | end"
            + " | POST /2 1.1 [host=x,content-length=2,connection=keep-alive] | body cd | end"
            + " | POST /3 1.1 [host=x,content-length=3,connection=keep-alive] | body efg | end"
            + " | GET /4 1.1 [host=x,connection=close] close | end")
    }

    @Test func emptyLinesBeforeARequestAreSkipped() throws {
        #expect(try transcript("\r\n\r\nGET / HTTP/1.1\r\n\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
            == "GET / 1.1 [] | end | GET /b 1.1 [] | end")
    }

    @Test func chunkedBodiesWithExtensionsAndTrailers() throws {
        #expect(try transcript("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nx-t: 1\r\n\r\n")
            == "POST / 1.1 [transfer-encoding=Chunked] | body abcde | end [x-t=1]")
    }

    @Test func whetherTheConnectionIsKept() throws {
        #expect(try transcript("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n") == "GET / 1.1 [connection=keep-alive, Close] close | end")
        #expect(try transcript("GET / HTTP/1.0\r\n\r\n") == "GET / 1.0 [] close | end")
        #expect(try transcript("GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n") == "GET / 1.0 [connection=Keep-Alive] | end")
    }

    @Test func knownMethodsOnly() throws {
        #expect(try transcript("PROPFIND / HTTP/1.1\r\n\r\n") == "PROPFIND / 1.1 [] | end")
        #expect(try transcript("OPTIONS * HTTP/1.1\r\n\r\n") == "OPTIONS * 1.1 [] | end")
        for method in ["FETCH", "QUERY", "get"] {
            #expect(throws: HTTP1ParseError(description: "invalid method")) { _ = try parse("\(method) / HTTP/1.1\r\n\r\n") }
        }
    }

    @Test func anUpgradeRequestStopsTheParserUntilResumed() throws {
        let text = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\u{1}\u{2}GET /next HTTP/1.1\r\n\r\n"
        let first = try parse(text)
        #expect(first.transcript.description == "GET /ws 1.1 [connection=Upgrade,upgrade=websocket] | end")
        #expect(first.left == "\u{1}\u{2}GET /next HTTP/1.1\r\n\r\n")
        // CONNECT too, with no body whatever its headers say.
        let connect = try parse("CONNECT a:443 HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello")
        #expect(connect.transcript.description == "CONNECT a:443 1.1 [content-length=5] | end")
        #expect(connect.left == "hello")
        // An upgrade header without `upgrade` in connection is no upgrade.
        #expect(try transcript("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
            == "GET / 1.1 [upgrade=h2c] | end | GET /b 1.1 [] | end")

        var parser = HTTP1RequestParser()
        var buffer = ByteBuffer(string: "GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\nGET /b HTTP/1.1\r\n\r\n")
        var events = PartTranscript()
        try parser.parse(&buffer) { Self.record($0, into: &events) }
        #expect(parser.isWaitingForUpgrade)
        try parser.parse(&buffer) { Self.record($0, into: &events) }
        #expect(events.events.count == 2)
        parser.resumeAfterUpgrade()
        try parser.parse(&buffer) { Self.record($0, into: &events) }
        #expect(events.events.suffix(2) == ["GET /b 1.1 []", "end"])
        #expect(buffer.readableBytes == 0)
    }

    @Test(arguments: [
        ("GET  / HTTP/1.1\r\n\r\n", "invalid request line"),
        ("GET / HTTP/1.1 \r\n\r\n", "invalid request line"),
        ("GET /\u{1} HTTP/1.1\r\n\r\n", "invalid request target"),
        ("GET /a#b HTTP/1.1\r\n\r\n", "invalid request target"),
        ("GET /a b HTTP/1.1\r\n\r\n", "invalid request line"),
        ("GET / HTTP/2.0\r\n\r\n", "invalid request line"),
        ("GET / HTTP/1.2\r\n\r\n", "unsupported HTTP version"),
        ("GET / http/1.1\r\n\r\n", "invalid request line"),
        ("GET /\r\n\r\n", "invalid request line"),
        ("G(T / HTTP/1.1\r\n\r\n", "invalid method"),
        ("GET / HTTP/1.1\r\nx-a: 1\r\n folded\r\n\r\n", "obsolete line folding"),
        ("GET / HTTP/1.1\r\nno colon\r\n\r\n", "header without a colon"),
        ("GET / HTTP/1.1\r\nx-a : 1\r\n\r\n", "invalid header name"),
        ("GET / HTTP/1.1\r\nx-a: 1\r2\r\n\r\n", "invalid header value"),
        ("POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", "invalid content-length"),
        ("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "invalid content-length"),
        ("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", "invalid content-length"),
        ("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", "both content-length and transfer-encoding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "unsupported transfer-encoding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "unsupported transfer-encoding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "unsupported transfer-encoding"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nx\r\n", "invalid chunk size"),
        ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd", "missing CRLF after chunk data"),
    ])
    func malformedRequestsFail(text: String, reason: String) throws {
        #expect(throws: HTTP1ParseError(description: reason)) { _ = try parse(text) }
        // Cut anywhere, the same.
        #expect(throws: HTTP1ParseError(description: reason)) { _ = try parse(text, chunk: 1) }
        // Once failed, the parser reads nothing more.
        var parser = HTTP1RequestParser()
        var buffer = ByteBuffer(string: text)
        _ = try? parser.parse(&buffer) { _ in }
        var next = ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n")
        var emitted = 0
        try parser.parse(&next) { _ in emitted += 1 }
        #expect(emitted == 0)
    }

    @Test func headsAreBounded() throws {
        let big = "GET / HTTP/1.1\r\nx-big: " + String(repeating: "a", count: HTTP1Syntax.maximumHeadSize)
        #expect(throws: HTTP1RequestParser.headersTooLarge) { _ = try parse(big) }
        #expect(throws: HTTP1RequestParser.headersTooLarge) { _ = try parse(big + "\r\n\r\n") }
        // Arriving in pieces, too large all the same once past the bound.
        #expect(throws: HTTP1RequestParser.headersTooLarge) { _ = try parse(big + "\r\n\r\n", chunk: 1000) }
        // Just under the bound, incomplete: waits for more.
        let partial = try parse(String(decoding: big.utf8.prefix(HTTP1Syntax.maximumHeadSize), as: UTF8.self))
        #expect(partial.transcript.events.isEmpty)
    }
}
