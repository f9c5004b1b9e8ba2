import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import NIOCore
import NIOPosix
import ProxyCore
import Testing
@testable import ProxyServer

/// gRPC traffic through an in-process meshproxy, with grpc-swift on both sides: a service with all
/// four call kinds on 127.0.0.1 behind the proxy, and grpc-swift's client in front of it. (The
/// integration tests do the same with Python's grpcio, an independent implementation, and Envoy.)
@Suite(.serialized) struct GRPCThroughProxyTests {
    /// Messages are raw bytes: the proxy never looks inside them, so no generated code is needed.
    struct RawBytes: MessageSerializer, MessageDeserializer {
        func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes { Bytes(message) }
        func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
            serializedMessageBytes.withUnsafeBytes { Array($0) }
        }
    }

    static func method(_ name: String) -> MethodDescriptor {
        MethodDescriptor(fullyQualifiedService: "swiftmesh.test.Echo", method: name)
    }

    /// `Get` echoes one message, `Expand` answers each byte of its request as a message, `Collect`
    /// joins a stream into one message, `Update` echoes a stream, `Fail` refuses with NOT_FOUND
    /// before any message (a trailers-only response), `Slow` outlives any short deadline.
    struct EchoService: RegistrableRPCService {
        func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
            router.registerHandler(forMethod: method("Get"), deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
                StreamingServerResponse { writer in
                    for try await message in request.messages { try await writer.write(message) }
                    return [:]
                }
            }
            router.registerHandler(forMethod: method("Expand"), deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
                StreamingServerResponse { writer in
                    for try await message in request.messages {
                        for byte in message { try await writer.write([byte]) }
                    }
                    return [:]
                }
            }
            router.registerHandler(forMethod: method("Collect"), deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
                StreamingServerResponse { writer in
                    var joined: [UInt8] = []
                    for try await message in request.messages { joined += message }
                    try await writer.write(joined)
                    return [:]
                }
            }
            router.registerHandler(forMethod: method("Update"), deserializer: RawBytes(), serializer: RawBytes()) { request, _ in
                StreamingServerResponse { writer in
                    for try await message in request.messages { try await writer.write(message) }
                    return ["x-echoed": "yes"]
                }
            }
            router.registerHandler(forMethod: method("Fail"), deserializer: RawBytes(), serializer: RawBytes()) { _, _ in
                StreamingServerResponse(error: RPCError(code: .notFound, message: "no such thing"))
            }
            router.registerHandler(forMethod: method("Slow"), deserializer: RawBytes(), serializer: RawBytes()) { _, _ in
                StreamingServerResponse { writer in
                    try await Task.sleep(for: .milliseconds(1500))
                    try await writer.write([1])
                    return [:]
                }
            }
        }
    }

    /// A port nothing listens on at the moment (bound, read, released).
    static func freePort() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).wait()
        defer { try? channel.close().wait() }
        return channel.localAddress!.port!
    }

    static func bootstrap(listener: Int, admin: Int, upstream: Int) -> String {
        """
        admin: { address: { socket_address: { address: 127.0.0.1, port_value: \(admin) } } }
        static_resources:
          listeners:
          - name: grpc
            address: { socket_address: { address: 127.0.0.1, port_value: \(listener) } }
            filter_chains:
            - filters:
              - name: envoy.filters.network.http_connection_manager
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                  stat_prefix: grpc
                  codec_type: AUTO
                  http_filters:
                  - name: envoy.filters.http.router
                    typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router }
                  route_config:
                    virtual_hosts:
                    - name: echo
                      domains: ["*"]
                      routes:
                      - match: { prefix: /swiftmesh.test.Echo/ }
                        route: { cluster: echo, max_stream_duration: { grpc_timeout_header_max: 0s } }
          clusters:
          - name: echo
            type: STATIC
            typed_extension_protocol_options:
              envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
                "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
                explicit_http_config: { http2_protocol_options: {} }
            load_assignment:
              cluster_name: echo
              endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: \(upstream) } } } }] }]
        """
    }

    @Test func allFourCallKindsErrorsDeadlinesAndLargeMessagesPassThrough() async throws {
        let serverTransport = HTTP2ServerTransport.Posix(address: .ipv4(host: "127.0.0.1", port: 0),
                                                         transportSecurity: .plaintext)
        try await withGRPCServer(transport: serverTransport, services: [EchoService()]) { _ in
            let upstreamPort = try #require(try await serverTransport.listeningAddress.ipv4).port
            let listenerPort = try Self.freePort()
            let options = ServerOptions(configYAML: Self.bootstrap(listener: listenerPort, admin: try Self.freePort(),
                                                                   upstream: upstreamPort),
                                        concurrency: 1, drainTimeSeconds: 0)
            let proxy = try Server(options: options, bootstrap: try BootstrapLoader.load(options))
            try proxy.start()
            defer { proxy.drainAndStop() }

            var clientConfig = HTTP2ClientTransport.Posix.Config.defaults
            clientConfig.http2.maxFrameSize = 1 << 20
            let clientTransport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: "127.0.0.1", port: listenerPort), transportSecurity: .plaintext, config: clientConfig)
            try await withGRPCClient(transport: clientTransport) { client in
                try await Self.exercise(client)
            }
            let stats = proxy.stats
            #expect(stats.counter("cluster.echo.upstream_rq_total", StatTags(extractedName: "")).value >= 6)
            // The deadline ended the slow call at the proxy (its timer) or at the client (a reset), whichever came first.
            let ended = stats.counter("http.grpc.downstream_rq_max_duration_reached", StatTags(extractedName: "")).value
                + stats.counter("http.grpc.downstream_rq_rx_reset", StatTags(extractedName: "")).value
            #expect(ended == 1)
            // ...and the proxy reset the upstream stream rather than wait for the answer.
            #expect(stats.counter("cluster.echo.upstream_rq_tx_reset", StatTags(extractedName: "")).value == 1)
        }
    }

    static func exercise(_ client: GRPCClient<HTTP2ClientTransport.Posix>) async throws {
        // Unary, with a message of half a megabyte.
        let large = (0..<(512 << 10)).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let echoed = try await client.unary(request: ClientRequest(message: large), descriptor: method("Get"),
                                            serializer: RawBytes(), deserializer: RawBytes(), options: .defaults) {
            try $0.message
        }
        #expect(echoed == large)

        // Server streaming: one message per byte, in order.
        let expanded = try await client.serverStreaming(
            request: ClientRequest(message: Array("stream".utf8)), descriptor: method("Expand"), serializer: RawBytes(),
            deserializer: RawBytes(), options: .defaults
        ) { response in
            var parts: [[UInt8]] = []
            for try await message in response.messages { parts.append(message) }
            return parts
        }
        #expect(expanded == "stream".utf8.map { [$0] })

        // Client streaming: 64 messages of 16 KiB joined into one megabyte.
        let chunks = (0..<64).map { [UInt8](repeating: UInt8($0), count: 16 << 10) }
        let joined = try await client.clientStreaming(
            request: StreamingClientRequest { writer in
                for chunk in chunks { try await writer.write(chunk) }
            },
            descriptor: method("Collect"), serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
        ) { try $0.message }
        #expect(joined == chunks.flatMap { $0 })

        // Bidirectional streaming, and the server's trailing metadata passed through.
        let (replies, trailer) = try await client.bidirectionalStreaming(
            request: StreamingClientRequest { writer in
                for chunk in chunks.prefix(16) { try await writer.write(chunk) }
            },
            descriptor: method("Update"), serializer: RawBytes(), deserializer: RawBytes(), options: .defaults
        ) { response in
            var replies: [[UInt8]] = []
            var trailer: [String] = []
            for try await part in response.bodyParts {
                switch part {
                case .message(let message): replies.append(message)
                case .trailingMetadata(let metadata): trailer = Array(metadata[stringValues: "x-echoed"])
                }
            }
            return (replies, trailer)
        }
        #expect(replies == Array(chunks.prefix(16)))
        #expect(trailer == ["yes"])

        // A trailers-only error keeps its status and message.
        let failure = await #expect(throws: RPCError.self) {
            try await client.unary(request: ClientRequest(message: [0]), descriptor: method("Fail"), serializer: RawBytes(),
                                   deserializer: RawBytes(), options: .defaults) { try $0.message }
        }
        #expect(failure?.code == .notFound)
        #expect(failure?.message == "no such thing")

        // The client's deadline is the stream's: DEADLINE_EXCEEDED long before the server would answer.
        var short = CallOptions.defaults
        short.timeout = .milliseconds(300)
        let late = await #expect(throws: RPCError.self) {
            try await client.unary(request: ClientRequest(message: [0]), descriptor: method("Slow"), serializer: RawBytes(),
                                   deserializer: RawBytes(), options: short) { try $0.message }
        }
        #expect(late?.code == .deadlineExceeded)
    }
}
