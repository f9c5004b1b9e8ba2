import NIOCore
import NIOHTTP1
import NIOPosix
import ProxyCore
import ProxyHTTP
import ProxyTLS
import ProxyUpstream
import XDSAPI
#if canImport(Glibc)
import Glibc
#endif

/// Opens TCP connections to upstream hosts, with TLS first when the cluster's transport socket is
/// an UpstreamTlsContext. A TLS connection is handed to the pool only once its handshake is done,
/// so a failed handshake is a connection failure, as in Envoy.
struct NIOUpstreamConnector: UpstreamConnector {
    /// The cluster's TLS; nil for plaintext.
    var transport: UpstreamTransportSocket?
    /// `upstream_connection_options.tcp_keepalive`; nil leaves keep-alive off, as Envoy does.
    var keepalive: TCPKeepalive?
    /// The cluster's `per_connection_buffer_limit_bytes`: its connections' write water marks.
    var bufferLimit = ChannelOptions.Types.WriteBufferWaterMark.defaultBufferLimit

    var appliesTransportSocket: Bool { true }

    func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                 handler: UpstreamConnectionHandler) -> EventLoopFuture<any Channel> {
        connect(to: host, on: loop, timeout: timeout, forHTTP2: false) { channel in
            // The handler encodes requests and tells the parser each one's method; the parser hands
            // it the response parts (and, when removed for a tunnel, the bytes past the 101).
            let parser = UpstreamResponseParserHandler(connection: handler)
            handler.encodeRequests(with: HTTP1RequestEncoding.makeEncoder(), for: parser)
            try channel.pipeline.syncOperations.addHandlers([parser, handler])
        }
    }

    /// Used by HTTP/2 pools.
    func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                 initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
        connect(to: host, on: loop, timeout: timeout, forHTTP2: true, initializer: initializer)
    }

    /// With TLS, what ALPN chose is remembered on the host; for an `auto_config` cluster a choice
    /// that does not fit the pool (`forHTTP2`) fails the connection with `ALPNMismatch`.
    private func connect(to host: Host, on loop: any EventLoop, timeout: TimeAmount, forHTTP2: Bool,
                         initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
        guard let transport else { return connectTCP(to: host, on: loop, timeout: timeout, initializer: initializer) }
        guard let tls = transport.context else {
            return loop.makeFailedFuture(UpstreamTLSNotReady(secrets: transport.spec.secretReferences.map(\.name)))
        }
        let handshake = loop.makePromise(of: Void.self)
        let connected = connectTCP(to: host, on: loop, timeout: timeout) { channel in
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(try tls.makeClientHandler(hostname: host.hostname, requestSNI: host.sni,
                                                          validateRequestSNI: transport.validatesRequestSNI))
            let autoALPN = transport.autoALPN
            try sync.addHandler(TLSHandshakeHandler(context: tls, onFailure: { handshake.fail($0) }) { channel, negotiated, _ in
                let http2 = negotiated == "h2"
                host.recordNegotiated(http2: http2)
                if autoALPN, http2 != forHTTP2 {
                    handshake.fail(ALPNMismatch(negotiated: negotiated))
                    channel.close(promise: nil)
                } else {
                    handshake.succeed()
                }
            })
            try initializer(channel)
        }
        connected.whenFailure { handshake.fail($0) }
        return connected.flatMap { channel in handshake.futureResult.map { channel } }
    }

    private func connectTCP(to host: Host, on loop: any EventLoop, timeout: TimeAmount,
                            initializer: @escaping @Sendable (any Channel) throws -> Void) -> EventLoopFuture<any Channel> {
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark,
                           value: ChannelOptions.Types.WriteBufferWaterMark(perConnectionBufferLimit: bufferLimit))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try initializer(channel) }
            }
        if let keepalive {
            bootstrap = bootstrap.channelOption(.socketOption(.so_keepalive), value: 1)
            for (name, value) in [(TCP_KEEPCNT, keepalive.probes), (TCP_KEEPIDLE, keepalive.time),
                                  (TCP_KEEPINTVL, keepalive.interval)] {
                guard let value else { continue }
                bootstrap = bootstrap.channelOption(
                    ChannelOptions.Types.SocketOption(level: .tcp, name: NIOBSDSocket.Option(rawValue: name)),
                    value: SocketOptionValue(value))
            }
        }
        if let address = try? SocketAddress(ipAddress: host.address, port: host.port) {
            return bootstrap.connect(to: address)
        }
        return bootstrap.connect(host: host.address, port: host.port)
    }
}

/// A TLS cluster whose SDS secrets have not arrived yet: its connections fail rather than go out in plaintext.
struct UpstreamTLSNotReady: Error, CustomStringConvertible {
    var secrets: [String]
    var description: String { "TLS secrets not yet received: \(secrets.joined(separator: ", "))" }
}

/// TCP keep-alive probes on upstream connections (`upstream_connection_options.tcp_keepalive`): how
/// many, after how long idle, how often, in seconds; nil keeps the system's value.
struct TCPKeepalive: Sendable, Equatable {
    var probes: UInt32?
    var time: UInt32?
    var interval: UInt32?

    init?(_ config: Envoy_Config_Cluster_V3_Cluster) {
        guard config.hasUpstreamConnectionOptions, config.upstreamConnectionOptions.hasTcpKeepalive else { return nil }
        let keepalive = config.upstreamConnectionOptions.tcpKeepalive
        probes = keepalive.hasKeepaliveProbes ? keepalive.keepaliveProbes.value : nil
        time = keepalive.hasKeepaliveTime ? keepalive.keepaliveTime.value : nil
        interval = keepalive.hasKeepaliveInterval ? keepalive.keepaliveInterval.value : nil
    }
}
