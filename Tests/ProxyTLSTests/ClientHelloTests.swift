import NIOCore
import NIOEmbedded
import NIOSSL
import ProxyTLS
import Testing

@Suite struct ClientHelloTests {
    /// A real ClientHello, written by NIOSSL's client handler into an in-memory channel.
    static func clientHello(serverName: String?, alpn: [String]) throws -> [UInt8] {
        var config = TLSConfiguration.makeClientConfiguration()
        config.applicationProtocols = alpn
        config.certificateVerification = .none
        let context = try NIOSSLContext(configuration: config)
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: context, serverHostname: serverName))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 443)).wait()
        var bytes: [UInt8] = []
        while var buffer = try channel.readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readBytes(length: buffer.readableBytes) ?? []
        }
        _ = try? channel.finish()
        return bytes
    }

    @Test func readsServerNameAndALPN() throws {
        let bytes = try Self.clientHello(serverName: "API.example.com", alpn: ["h2", "http/1.1"])
        #expect(ClientHello.parse(bytes) == .hello(ClientHello(serverName: "api.example.com", alpn: ["h2", "http/1.1"])))
    }

    @Test func helloWithoutExtensionsWeCareAbout() throws {
        let bytes = try Self.clientHello(serverName: nil, alpn: [])
        #expect(ClientHello.parse(bytes) == .hello(ClientHello()))
    }

    @Test func waitsForTheWholeHello() throws {
        let bytes = try Self.clientHello(serverName: "a.example.com", alpn: ["h2"])
        for cut in [0, 1, 4, 5, 9, 40, bytes.count - 1] {
            #expect(ClientHello.parse(Array(bytes.prefix(cut))) == .needMoreData, "cut at \(cut)")
        }
    }

    @Test func plaintextIsNotTLS() {
        #expect(ClientHello.parse(Array("GET / HTTP/1.1\r\n".utf8)) == .notTLS)
        #expect(ClientHello.parse(Array("PRI * HTTP/2.0".utf8)) == .notTLS)
        #expect(ClientHello.parse([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0]) == .notTLS)  // ServerHello
    }

    @Test func lyingLengthsAreNotTrusted() {
        // A complete hello whose extensions length claims far more than the hello holds.
        var bytes: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x2c, 0x01, 0x00, 0x00, 0x28, 0x03, 0x03]
        bytes += Array(repeating: 0, count: 32) + [0x00, 0x00, 0x00, 0x00, 0xff, 0xff]
        #expect(ClientHello.parse(bytes) == .notTLS)
    }
}
