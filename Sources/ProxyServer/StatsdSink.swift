import NIOCore
import NIOPosix
import ProxyCore
import Synchronization
import XDSAPI
import XDSResource

/// `envoy.stat_sinks.statsd` over UDP: every `stats_flush_interval`, counters as the change since the
/// last flush (`|c`, every counter that was ever used, as Envoy) and gauges as their value (`|g`), named
/// `<prefix>.<stat name>` (prefix `envoy` unless set), and every histogram sample since the last
/// flush (`|ms`, whole milliseconds), packed into datagrams of at most 1,400 bytes.
final class StatsdSink: Sendable {
    static let typeName = "envoy.config.metrics.v3.StatsdSink"
    static let maxDatagram = 1_400

    let target: SocketAddress
    let prefix: String
    private let store: StatsStore
    private let lastCounters = Mutex<[String: UInt64]>([:])
    private let channel = Mutex<(any Channel)?>(nil)

    init(_ proto: Envoy_Config_Metrics_V3_StatsdSink, path: String, store: StatsStore) throws {
        guard case .address(let address)? = proto.statsdSpecifier, case .socketAddress(let socket)? = address.address,
              case .portValue(let port)? = socket.portSpecifier
        else {
            throw ListenerConfigError(path + ".address", "a UDP socket_address is required (tcp_cluster_name is not supported)")
        }
        do {
            target = try SocketAddress(ipAddress: socket.address, port: Int(port))
        } catch {
            throw ListenerConfigError(path + ".address.socket_address.address", "malformed IP address: \(socket.address)")
        }
        prefix = proto.prefix.isEmpty ? "envoy" : proto.prefix
        self.store = store
    }

    /// The sinks of a bootstrap's `stats_sinks`.
    static func sinks(of bootstrap: Envoy_Config_Bootstrap_V3_Bootstrap, store: StatsStore) throws -> [StatsdSink] {
        try bootstrap.statsSinks.enumerated().map { index, sink in
            let path = "stats_sinks[\(index)]"
            guard case .typedConfig(let any)? = sink.configType, any.typeURL == TypeURL.prefix + typeName else {
                throw ListenerConfigError(path, "Didn't find a registered implementation for '\(sink.name)' with type URL: "
                    + "'\(sink.typedConfig.typeURL)'")
            }
            return try StatsdSink(try Envoy_Config_Metrics_V3_StatsdSink(unpackingAny: any), path: path + ".typed_config",
                                  store: store)
        }
    }

    /// One flush's lines, remembering the counters' values for the next.
    func lines() -> [String] {
        let snapshot = store.snapshot()
        var lines: [String] = []
        lastCounters.withLock { last in
            for counter in snapshot.counters {
                let previous = last[counter.name] ?? 0
                // After /reset_counters the count starts again from 0.
                let delta = counter.value >= previous ? counter.value - previous : counter.value
                last[counter.name] = counter.value
                if counter.used || counter.value > 0 { lines.append("\(prefix).\(counter.name):\(delta)|c") }
            }
        }
        for gauge in snapshot.gauges { lines.append("\(prefix).\(gauge.name):\(gauge.value)|g") }
        return lines
    }

    /// Datagrams of whole lines joined by newlines.
    static func datagrams(_ lines: [String]) -> [String] {
        var packets: [String] = []
        var current = ""
        for line in lines {
            if !current.isEmpty, current.utf8.count + 1 + line.utf8.count > maxDatagram {
                packets.append(current)
                current = ""
            }
            current += current.isEmpty ? line : "\n" + line
        }
        if !current.isEmpty { packets.append(current) }
        return packets
    }

    /// The lines of histogram samples.
    func lines(samples: [HistogramSampleBuffers.Sample]) -> [String] {
        samples.map { "\(prefix).\($0.histogram.name):\($0.milliseconds)|ms" }
    }

    /// Opens the UDP socket.
    func open(group: any EventLoopGroup) throws {
        let channel = try DatagramBootstrap(group: group)
            .bind(host: target.protocol == .inet6 ? "::" : "0.0.0.0", port: 0).wait()
        self.channel.withLock { $0 = channel }
    }

    /// Sends the counters, gauges and the given histogram samples.
    func flush(samples: [HistogramSampleBuffers.Sample]) {
        guard let channel = channel.withLock({ $0 }) else { return }
        for packet in Self.datagrams(lines() + lines(samples: samples)) {
            let envelope = AddressedEnvelope(remoteAddress: target, data: channel.allocator.buffer(string: packet))
            channel.writeAndFlush(envelope, promise: nil)
        }
    }

    /// Flushes every sink every `interval` until the group shuts down; histogram samples are
    /// collected once per flush and go to every sink.
    static func start(_ sinks: [StatsdSink], samples: HistogramSampleBuffers?, group: any EventLoopGroup,
                      interval: TimeAmount) throws {
        guard !sinks.isEmpty else { return }
        for sink in sinks { try sink.open(group: group) }
        let loop = group.next()
        loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
            guard let samples else {
                sinks.forEach { $0.flush(samples: []) }
                return
            }
            samples.drain(on: loop).whenComplete { result in
                let drained = (try? result.get()) ?? []
                sinks.forEach { $0.flush(samples: drained) }
            }
        }
    }
}
