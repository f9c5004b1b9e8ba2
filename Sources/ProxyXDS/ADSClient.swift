import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import SwiftProtobuf
import Synchronization
import XDSAPI

/// What a subscriber answers for one response: nil to ACK, or the reason to NACK with; and the
/// names it now wants for the named types (RDS, EDS), which change as listeners and clusters do.
public struct XDSApplyResult: Sendable {
    public var errorMessage: String?
    public var subscriptions: [String: Set<String>]

    public init(errorMessage: String? = nil, subscriptions: [String: Set<String>] = [:]) {
        self.errorMessage = errorMessage
        self.subscriptions = subscriptions
    }
}

/// Which ADS flavour to speak (Envoy's `api_type`).
public enum ADSClientMode: Sendable {
    case stateOfTheWorld
    case delta
}

/// The type URLs the ADS client subscribes to.
public enum XDSTypes {
    public static let cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    public static let endpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
    public static let listener = "type.googleapis.com/envoy.config.listener.v3.Listener"
    public static let route = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
    public static let secret = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    /// Request order on a new stream: clusters and listeners (wildcard) first, then named types.
    static let order = [cluster, endpoint, listener, route, secret]
}

/// Hands decoded xDS responses to whoever applies them; the client itself applies nothing.
public protocol XDSSubscriber: Sendable {
    /// A state-of-the-world update of one type: every resource of it the proxy should now have.
    func apply(typeURL: String, resources: [Google_Protobuf_Any], version: String) async -> XDSApplyResult
    /// The stream came up (true) or went away (false); config keeps serving either way.
    func connectionChanged(_ connected: Bool)
}

/// meshproxy's ADS client (state of the world or delta): one stream to the management server,
/// per-type version and nonce, ACK/NACK by `error_detail`, subscriptions that follow the config,
/// and reconnection with jittered exponential back-off. Generic over the gRPC transport, so tests
/// run it in process against the real control plane.
public final class ADSClient<Transport: ClientTransport>: Sendable {
    static var clusterType: String { XDSTypes.cluster }
    static var listenerType: String { XDSTypes.listener }
    static var typeOrder: [String] { XDSTypes.order }

    struct TypeState {
        var version = ""
        var nonce = ""
        var names: Set<String> = []
        var requested = false
        /// Delta only: what the proxy holds, by name.
        var held: [String: Envoy_Service_Discovery_V3_Resource] = [:]
    }

    public typealias Mode = ADSClientMode

    private let makeTransport: @Sendable () throws -> Transport
    private let node: Envoy_Config_Core_V3_Node
    private let subscriber: any XDSSubscriber
    private let logger: Logger
    private let types = Mutex<[String: TypeState]>([:])
    private let backOffBase: Duration
    private let backOffMax: Duration
    public let mode: Mode

    public init(transport makeTransport: @escaping @Sendable () throws -> Transport, node: Envoy_Config_Core_V3_Node,
                subscriber: any XDSSubscriber, logger: Logger, mode: Mode = .stateOfTheWorld,
                backOffBase: Duration = .milliseconds(500), backOffMax: Duration = .seconds(30)) {
        self.mode = mode
        self.makeTransport = makeTransport
        self.node = node
        self.subscriber = subscriber
        self.logger = logger
        self.backOffBase = backOffBase
        self.backOffMax = backOffMax
    }

    /// Connects, streams, and reconnects until cancelled.
    public func run() async {
        var failures = 0
        while !Task.isCancelled {
            let started = ContinuousClock.now
            do {
                switch mode {
                case .stateOfTheWorld: try await stream()
                case .delta: try await deltaStream()
                }
            } catch {
                if !Task.isCancelled { logger.warning("xDS stream ended: \(error)") }
            }
            subscriber.connectionChanged(false)
            if Task.isCancelled { break }
            // A stream that lived a while resets the back-off.
            failures = ContinuousClock.now - started > .seconds(10) ? 1 : failures + 1
            let ceiling = min(backOffBase * Int(1 << min(failures, 16)), backOffMax)
            let jittered = ceiling * Double.random(in: 0.5...1.0)
            try? await Task.sleep(for: jittered)
        }
    }

    private typealias ADS = Envoy_Service_Discovery_V3_AggregatedDiscoveryService.Client<Transport>

    private func stream() async throws {
        try await runStream(initialRequest: initialRequest, handle: handle) { ads, producer, onResponse in
            try await ads.streamAggregatedResources(requestProducer: producer, onResponse: onResponse)
        }
    }

    private func deltaStream() async throws {
        try await runStream(initialRequest: initialDeltaRequest, handle: handleDelta) { ads, producer, onResponse in
            try await ads.deltaAggregatedResources(requestProducer: producer, onResponse: onResponse)
        }
    }

    /// One stream of either flavour: the opening requests (a new stream asks again for everything,
    /// with the versions it already has), then each response handled in turn, its replies queued.
    private func runStream<Request: Sendable, Response: Sendable>(
        initialRequest: (String, Bool) -> Request?,
        handle: @escaping @Sendable (Response) async -> [Request],
        call: @escaping @Sendable (ADS, @escaping @Sendable (RPCWriter<Request>) async throws -> Void,
                                   @escaping @Sendable (StreamingClientResponse<Response>) async throws -> Void)
            async throws -> Void
    ) async throws {
        let transport = try makeTransport()
        let (requests, outbox) = AsyncStream<Request>.makeStream()
        var first = true
        for type in Self.typeOrder {
            guard let request = initialRequest(type, first) else { continue }
            outbox.yield(request)
            first = false
        }
        let subscriber = self.subscriber
        try await withGRPCClient(transport: transport) { client in
            try await call(ADS(wrapping: client), { writer in
                for await request in requests { try await writer.write(request) }
            }, { response in
                defer { outbox.finish() }
                for try await message in response.messages {
                    subscriber.connectionChanged(true)
                    for request in await handle(message) { outbox.yield(request) }
                }
            })
        }
    }

    /// Takes the names the subscriber now wants for the named types; returns the types whose
    /// subscription changed (or was never sent), with the names they had before.
    private static func resubscribe(_ result: XDSApplyResult, in types: inout [String: TypeState])
        -> [(type: String, previous: Set<String>, state: TypeState)]
    {
        var changes: [(type: String, previous: Set<String>, state: TypeState)] = []
        for type in typeOrder {
            guard let names = result.subscriptions[type] else { continue }
            var state = types[type] ?? TypeState()
            guard names != state.names || (!state.requested && !names.isEmpty) else { continue }
            let previous = state.names
            state.names = names
            state.requested = true
            types[type] = state
            changes.append((type, previous, state))
        }
        return changes
    }

    private func initialRequest(_ type: String, includeNode: Bool) -> Envoy_Service_Discovery_V3_DiscoveryRequest? {
        types.withLock { types -> Envoy_Service_Discovery_V3_DiscoveryRequest? in
            var state = types[type] ?? TypeState()
            let wildcard = type == Self.clusterType || type == Self.listenerType
            guard wildcard || !state.names.isEmpty else { return nil }
            state.nonce = ""
            state.requested = true
            types[type] = state
            var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
            if includeNode { request.node = node }
            request.typeURL = type
            request.versionInfo = state.version
            request.resourceNames = state.names.sorted()
            return request
        }
    }

    /// Applies one response and returns the ACK or NACK, plus requests for changed subscriptions.
    private func handle(_ response: Envoy_Service_Discovery_V3_DiscoveryResponse) async
        -> [Envoy_Service_Discovery_V3_DiscoveryRequest]
    {
        let result = await subscriber.apply(typeURL: response.typeURL, resources: response.resources,
                                            version: response.versionInfo)
        return types.withLock { types in
            var state = types[response.typeURL] ?? TypeState()
            state.nonce = response.nonce
            var reply = Envoy_Service_Discovery_V3_DiscoveryRequest()
            reply.typeURL = response.typeURL
            reply.responseNonce = response.nonce
            if let message = result.errorMessage {
                reply.versionInfo = state.version
                reply.errorDetail.code = 3  // INVALID_ARGUMENT, as Envoy reports rejected config
                reply.errorDetail.message = message
            } else {
                state.version = response.versionInfo
                reply.versionInfo = response.versionInfo
            }
            reply.resourceNames = state.names.sorted()
            types[response.typeURL] = state
            return [reply] + Self.resubscribe(result, in: &types).map { change in
                var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
                request.typeURL = change.type
                request.versionInfo = change.state.version
                request.responseNonce = change.state.nonce
                request.resourceNames = change.state.names.sorted()
                return request
            }
        }
    }

    // MARK: delta

    /// A new delta stream tells the server what the proxy already holds (`initial_resource_versions`).
    private func initialDeltaRequest(_ type: String, includeNode: Bool) -> Envoy_Service_Discovery_V3_DeltaDiscoveryRequest? {
        types.withLock { types -> Envoy_Service_Discovery_V3_DeltaDiscoveryRequest? in
            var state = types[type] ?? TypeState()
            let wildcard = type == Self.clusterType || type == Self.listenerType
            guard wildcard || !state.names.isEmpty else { return nil }
            state.requested = true
            types[type] = state
            var request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            if includeNode { request.node = node }
            request.typeURL = type
            request.resourceNamesSubscribe = state.names.sorted()
            request.initialResourceVersions = state.held.mapValues(\.version)
            return request
        }
    }

    private func handleDelta(_ response: Envoy_Service_Discovery_V3_DeltaDiscoveryResponse) async
        -> [Envoy_Service_Discovery_V3_DeltaDiscoveryRequest]
    {
        // The subscriber takes whole sets, so the delta is applied to what is held first.
        var held = types.withLock { $0[response.typeURL]?.held ?? [:] }
        for resource in response.resources { held[resource.name] = resource }
        for name in response.removedResources { held[name] = nil }
        let result = await subscriber.apply(typeURL: response.typeURL,
                                            resources: held.keys.sorted().map { held[$0]!.resource },
                                            version: response.systemVersionInfo)
        return types.withLock { types in
            var state = types[response.typeURL] ?? TypeState()
            var reply = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
            reply.typeURL = response.typeURL
            reply.responseNonce = response.nonce
            if let message = result.errorMessage {
                reply.errorDetail.code = 3
                reply.errorDetail.message = message
            } else {
                state.held = held
                state.version = response.systemVersionInfo
            }
            types[response.typeURL] = state
            return [reply] + Self.resubscribe(result, in: &types).map { change in
                var request = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest()
                request.typeURL = change.type
                request.resourceNamesSubscribe = change.state.names.subtracting(change.previous).sorted()
                request.resourceNamesUnsubscribe = change.previous.subtracting(change.state.names).sorted()
                for name in request.resourceNamesUnsubscribe { types[change.type]?.held[name] = nil }
                return request
            }
        }
    }
}

/// TLS to the management server, from the xDS cluster's UpstreamTlsContext: PEM bytes as read from
/// its files or inline data.
public struct ADSClientTLS: Sendable {
    public var certificateChain: [UInt8]?
    public var privateKey: [UInt8]?
    /// The CAs the server's certificate must chain to; nil: the certificate is not checked (Envoy's
    /// behaviour without a validation context).
    public var trustedCA: [UInt8]?
    /// SNI and `:authority`.
    public var serverName: String?

    public init(certificateChain: [UInt8]?, privateKey: [UInt8]?, trustedCA: [UInt8]?, serverName: String?) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.trustedCA = trustedCA
        self.serverName = serverName
    }

    var transportSecurity: HTTP2ClientTransport.Posix.TransportSecurity {
        .tls(.defaults { config in
            if let certificateChain, let privateKey {
                config.certificateChain = [.bytes(certificateChain, format: .pem)]
                config.privateKey = .bytes(privateKey, format: .pem)
            }
            if let trustedCA {
                config.trustRoots = .certificates([.bytes(trustedCA, format: .pem)])
                config.serverCertificateVerification = .noHostnameVerification
            } else {
                config.serverCertificateVerification = .noVerification
            }
        })
    }
}

extension ADSClient where Transport == HTTP2ClientTransport.Posix {
    /// A client for a management server at `host:port` over HTTP/2, in plaintext or with `tls`.
    public convenience init(host: String, port: Int, tls: ADSClientTLS? = nil, node: Envoy_Config_Core_V3_Node,
                            subscriber: any XDSSubscriber, logger: Logger, mode: Mode = .stateOfTheWorld) {
        self.init(transport: {
            var config = HTTP2ClientTransport.Posix.Config.defaults
            if let name = tls?.serverName { config.http2.authority = name }
            return try HTTP2ClientTransport.Posix(target: Self.target(host: host, port: port),
                                                  transportSecurity: tls?.transportSecurity ?? .plaintext, config: config)
        }, node: node, subscriber: subscriber, logger: logger, mode: mode)
    }

    /// The management server as a gRPC target: an IP literal as is, a name through DNS.
    static func target(host: String, port: Int) -> any ResolvableTarget {
        if host.contains(":") {
            let v6: ResolvableTargets.IPv6 = .ipv6(address: host, port: port)
            return v6
        }
        if host.split(separator: ".").count == 4, host.allSatisfy({ $0.isNumber || $0 == "." }) {
            let v4: ResolvableTargets.IPv4 = .ipv4(address: host, port: port)
            return v4
        }
        let dns: ResolvableTargets.DNS = .dns(host: host, port: port)
        return dns
    }
}
