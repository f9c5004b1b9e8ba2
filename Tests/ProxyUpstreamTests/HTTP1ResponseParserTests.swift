import MeshTestSupport
import NIOCore
import NIOHTTP1
import Testing
@testable import ProxyUpstream

@Suite struct HTTP1ResponseParserTests {
    /// Records a part: heads with their status and whether they keep the connection.
    static func record(_ part: HTTP1ResponseParser.Part, into transcript: inout PartTranscript) {
        switch part {
        case .head(let head, let keeps):
            transcript.head("head \(head.version.major).\(head.version.minor) \(head.status.code) "
                + "[\(PartTranscript.fields(head.headers))]\(keeps ? "" : " close")")
        case .body(let body): transcript.body(body)
        case .end(let trailers): transcript.end(trailers)
        }
    }

    /// Parses `text` in one piece, or split into pieces of `chunk` bytes; what is left unparsed at the end too.
    func parse(_ text: String, requests: [HTTPMethod] = [.GET], chunk: Int? = nil, closeAfter: Bool = false) throws
        -> (transcript: PartTranscript, left: String)
    {
        var parser = HTTP1ResponseParser()
        var requests = requests.map(HTTP1ResponseParser.RequestKind.init)
        var transcript = PartTranscript()
        // As the connection's handler keeps them: each end answers the oldest request.
        let record = { (part: HTTP1ResponseParser.Part) in
            if case .end = part, !requests.isEmpty { requests.removeFirst() }
            Self.record(part, into: &transcript)
        }
        let left = try PartTranscript.feed(text, chunk: chunk) { pending in
            try parser.parse(&pending, request: { requests.first ?? .other }, emit: record)
        }
        if closeAfter { _ = parser.inputClosed(emit: record) }
        return (transcript, left)
    }

    func transcript(_ text: String, requests: [HTTPMethod] = [.GET], closeAfter: Bool = false) throws -> String {
        let parsed = try PartTranscript.everySplit { try parse(text, requests: requests, chunk: $0, closeAfter: closeAfter) }
        #expect(parsed.differingSplit == nil, "reads of \(parsed.differingSplit ?? 0) bytes parse otherwise")
        return parsed.transcript
    }

    /// Responses on a connection mostly repeat their lines (`date` within the second): repeated lines
    /// take the last response's fields and still say how the body is framed; changed ones are read anew.
    @Test func linesRepeatedFromTheLastResponse() throws {
        let first = "HTTP/1.1 200 OK\r\nServer: up\r\nDate: Mon, 07 Dec 2026 18:00:00 GMT\r\nContent-Length: 2\r\n\r\nab"
        let again = "HTTP/1.1 200 OK\r\nServer: up\r\nDate: Mon, 07 Dec 2026 18:00:00 GMT\r\nContent-Length: 2\r\n\r\ncd"
        let later = "HTTP/1.1 200 OK\r\nServer: up\r\nDate: Mon, 07 Dec 2026 18:00:01 GMT\r\nContent-Length: 2\r\n\r\nef"
        let chunked = "HTTP/1.1 200 OK\r\nServer: up\r\nTransfer-Encoding: chunked\r\n\r\n1\r\ng\r\n0\r\n\r\n"
        let date = "date=Mon, 07 Dec 2026 18:00:0"
        #expect(try transcript(first + again + later + chunked, requests: [.GET, .GET, .GET, .GET])
            == "head 1.1 200 [server=up,\(date)0 GMT,content-length=2] | body ab | end"
            + " | head 1.1 200 [server=up,\(date)0 GMT,content-length=2] | body cd | end"
            + " | head 1.1 200 [server=up,\(date)1 GMT,content-length=2] | body ef | end"
            + " | head 1.1 200 [server=up,transfer-encoding=chunked] | body g | end")
    }

    @Test func aResponseWithContentLength() throws {
        let text = "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
            + "Connection: keep-alive\r\n\r\nhello, world\n"
        #expect(try transcript(text) == "head 1.1 200 [server=nginx,content-type=text/plain,content-length=13,"
            + "connection=keep-alive] | body hello, world\n | end")
    }

    @Test func headerValuesLoseTheirSurroundingWhitespace() throws {
        #expect(try transcript("HTTP/1.1 204 No Content\r\nx-a:  \t spaced out \t\r\nx-b:\r\n\r\n")
            == "head 1.1 204 [x-a=spaced out,x-b=] | end")
    }

    @Test func bareLineFeedsEndLines() throws {
        #expect(try transcript("HTTP/1.1 200 OK\nContent-Length: 2\n\nok") == "head 1.1 200 [content-length=2] | body ok | end")
    }

    @Test func aStatusLineWithoutReason() throws {
        #expect(try transcript("HTTP/1.1 404\r\ncontent-length: 0\r\n\r\n") == "head 1.1 404 [content-length=0] | end")
    }

    @Test func chunkedBodiesWithExtensionsAndTrailers() throws {
        let text = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\nB \r\n, world!!!\n\r\n0\r\nGrpc-Status: 0\r\nx-t: 1\r\n\r\n"
        #expect(try transcript(text) == "head 1.1 200 [transfer-encoding=chunked] | body hello, world!!!\n"
            + " | end [grpc-status=0,x-t=1]")
        let plain = "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        #expect(try transcript(plain) == "head 1.1 200 [transfer-encoding=gzip, Chunked] | body ok | end")
    }

    @Test func responsesWithoutBodies() throws {
        // HEAD's response has no body whatever it says; nor have 204 and 304. The next response follows.
        let text = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
            + "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
        #expect(try transcript(text, requests: [.HEAD, .GET, .GET])
            == "head 1.1 200 [content-length=10] | end | head 1.1 304 [content-length=7] | end | head 1.1 200 [content-length=1] | body x | end")
    }

    @Test func interimResponsesAreDropped() throws {
        let text = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
        #expect(try transcript(text) == "head 1.1 201 [content-length=0] | end")
    }

    @Test func switchingProtocolsLeavesTheRestForTheTunnel() throws {
        let text = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\u{81}\u{02}hi"
        let whole = try parse(text)
        // Not kept for HTTP: the connection is the tunnel's now.
        #expect(whole.transcript.description == "head 1.1 101 [upgrade=websocket,connection=Upgrade] close | end")
        #expect(whole.left == "\u{81}\u{02}hi")
        let connect = try parse("HTTP/1.1 200 Connection Established\r\n\r\nraw bytes", requests: [.CONNECT])
        #expect(connect.transcript.description == "head 1.1 200 [] close | end")
        #expect(connect.left == "raw bytes")
    }

    @Test func aBodyWithoutFramingEndsWithTheConnection() throws {
        #expect(try transcript("HTTP/1.0 200 OK\r\n\r\nall of it", closeAfter: true)
            == "head 1.0 200 [] close | body all of it | end")
        // Cut short, a framed body does not end.
        #expect(try transcript("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", closeAfter: true)
            == "head 1.1 200 [content-length=10] | body abc")
    }

    @Test func whetherTheConnectionIsKept() throws {
        #expect(try transcript("HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n")
            == "head 1.1 200 [connection=keep-alive, Close,content-length=0] close | end")
        #expect(try transcript("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n") == "head 1.0 200 [content-length=0] close | end")
        #expect(try transcript("HTTP/1.0 200 OK\r\nconnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n")
            == "head 1.0 200 [connection=Keep-Alive,content-length=0] | end")
    }

    @Test(arguments: [
        ("HTTP/2.0 200 OK\r\n\r\n", "invalid status line"),
        ("HTTP/1.1 20 OK\r\n\r\n", "invalid status line"),
        ("HTTP/1.1 200OK\r\n\r\n", "invalid status line"),
        ("HTTP/1.1 099 Low\r\n\r\n", "invalid status code"),
        ("HTTP/1.1 200 O\u{7}K\r\n\r\n", "invalid reason phrase"),
        ("HTTP/1.1 200 OK\r\nx-a: 1\r\n folded\r\n\r\n", "obsolete line folding"),
        ("HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "header without a colon"),
        ("HTTP/1.1 200 OK\r\nx-a : 1\r\n\r\n", "invalid header name"),
        ("HTTP/1.1 200 OK\r\n: 1\r\n\r\n", "invalid header name"),
        ("HTTP/1.1 200 OK\r\nx-a: 1\r2\r\n\r\n", "invalid header value"),
        ("HTTP/1.1 200 OK\r\nx-a: 1\u{0}\r\n\r\n", "invalid header value"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n", "invalid content-length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "invalid content-length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "invalid content-length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", "invalid content-length"),
        ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "both content-length and transfer-encoding"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n", "invalid chunk size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n", "invalid chunk size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5 x\r\n", "invalid chunk size"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", "chunk size too large"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokxx", "missing CRLF after chunk data"),
    ])
    func malformedResponsesFail(text: String, reason: String) throws {
        #expect(throws: HTTP1ResponseParser.ParseError(description: reason)) { _ = try parse(text) }
        // Once failed, the parser reads nothing more.
        var parser = HTTP1ResponseParser()
        var buffer = ByteBuffer(string: text)
        _ = try? parser.parse(&buffer, request: { .other }) { _ in }
        var next = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        var emitted = 0
        try parser.parse(&next, request: { .other }) { _ in emitted += 1 }
        #expect(emitted == 0)
    }

    @Test func headsAndTrailersAreBounded() throws {
        let big = "HTTP/1.1 200 OK\r\nx-big: " + String(repeating: "a", count: HTTP1ResponseParser.maximumHeadSize)
        #expect(throws: HTTP1ResponseParser.ParseError(description: "response headers too large")) { _ = try parse(big) }
        // Whole in one read, and too large all the same.
        #expect(throws: HTTP1ResponseParser.ParseError(description: "response headers too large")) {
            _ = try parse(big + "\r\n\r\n")
        }
        // Just under the bound, still incomplete: waits for more.
        let partial = try parse(String(decoding: big.utf8.prefix(HTTP1ResponseParser.maximumHeadSize), as: UTF8.self))
        #expect(partial.transcript.events.isEmpty)
        let line = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;" + String(repeating: "e", count: 5000)
        #expect(throws: HTTP1ResponseParser.ParseError(description: "chunk size line too long")) { _ = try parse(line) }
    }
}
