import NIOCore
import ProxyTLS
#if canImport(Glibc)
import Glibc
#endif

/// Runs a listener's inspectors on a new connection's first bytes (tls_inspector: `tls` with the
/// ClientHello's SNI and ALPN, or `raw_buffer`; http_inspector: `h2c`, `http/1.1` or `http/1.0`),
/// then chooses the filter chain, installs it after itself, hands on the bytes it read and leaves
/// the pipeline. Bounded by
/// `listener_filters_timeout` and by how many bytes it will look at.
final class ListenerInspector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    private static let maxRequestLine = 8192

    private let chains: FilterChainSet
    private let stats: ListenerStats
    private let install: (FilterChainRuntime, any Channel) throws -> Void
    private var buffered: ByteBuffer?
    private var transport: String?
    private var hello: ClientHello?
    private var application: String??
    private var timer: Scheduled<Void>?
    private var done = false

    init(chains: FilterChainSet, stats: ListenerStats,
         install: @escaping (FilterChainRuntime, any Channel) throws -> Void) {
        self.chains = chains
        self.stats = stats
        self.install = install
        if !chains.inspection.tlsInspector { transport = "" }
        if !chains.inspection.httpInspector { application = .some(nil) }
    }

    func handlerAdded(context: ChannelHandlerContext) {
        stats.downstreamPreCxActive.increment()
        if let timeout = chains.inspection.timeout {
            timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
                guard !done else { return }
                stats.downstreamPreCxTimeout.increment()
                if chains.inspection.continueOnTimeout {
                    finish(context: context)
                } else {
                    finishInspection()
                    context.close(promise: nil)
                }
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if var earlier = buffered {
            earlier.writeBuffer(&bytes)
            bytes = earlier
        }
        buffered = bytes
        let view = Array(bytes.readableBytesView.prefix(max(Self.maxRequestLine, ClientHello.maxSize)))
        if transport == nil {
            switch ClientHello.parse(view) {
            case .needMoreData: break
            case .notTLS: transport = "raw_buffer"
            case .hello(let parsed):
                transport = "tls"
                hello = parsed
            }
        }
        // A TLS connection is not HTTP to http_inspector; its ALPN is what chains match on.
        if transport == "tls", application == nil { application = .some(nil) }
        if application == nil { application = Self.applicationProtocol(view) }
        if transport != nil, application != nil { finish(context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finishInspection()
        context.fireChannelInactive()
    }

    private func finishInspection() {
        guard !done else { return }
        done = true
        timer?.cancel()
        stats.downstreamPreCxActive.decrement()
    }

    private func finish(context: ChannelHandlerContext) {
        finishInspection()
        var info = ConnectionMatchInfo(local: context.channel.localAddress, remote: context.channel.remoteAddress)
        info.transportProtocol = transport ?? ""
        if case .some(.some(let protocolName)) = application { info.applicationProtocols = [protocolName] }
        if let hello {
            info.serverName = hello.serverName
            info.applicationProtocols = hello.alpn
        }
        guard let chain = chains.select(info) else {
            stats.noFilterChainMatch.increment()
            Self.reset(context.channel)
            return
        }
        do {
            try install(chain, context.channel)
        } catch {
            context.close(promise: nil)
            return
        }
        if let buffered {
            self.buffered = nil
            context.fireChannelRead(wrapInboundOut(buffered))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// Closes with a TCP reset, as Envoy does when no filter chain matches.
    static func reset(_ channel: any Channel) {
        guard let provider = channel as? any SocketOptionProvider else {
            channel.close(promise: nil)
            return
        }
        provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in channel.close(promise: nil) }
    }

    /// `.some(name)` for HTTP, `.some(nil)` for not HTTP, nil until the bytes tell.
    static func applicationProtocol(_ bytes: [UInt8]) -> String?? {
        let checked = min(bytes.count, preface.count)
        if checked > 0, bytes.prefix(checked).elementsEqual(preface.prefix(checked)) {
            return checked == preface.count ? .some("h2c") : nil
        }
        // A request line: an upper-case method, a space, ..., " HTTP/1.x" before the first CRLF.
        for (index, byte) in bytes.enumerated() {
            if byte == UInt8(ascii: " ") { break }
            if byte < UInt8(ascii: "A") || byte > UInt8(ascii: "Z") || index > 20 { return .some(nil) }
        }
        guard let end = bytes.firstIndex(of: UInt8(ascii: "\r")) else {
            return bytes.count >= maxRequestLine ? .some(nil) : nil
        }
        let line = bytes[..<end]
        if line.count > 9, line.suffix(9).elementsEqual(" HTTP/1.1".utf8) { return .some("http/1.1") }
        if line.count > 9, line.suffix(9).elementsEqual(" HTTP/1.0".utf8) { return .some("http/1.0") }
        return .some(nil)
    }
}
