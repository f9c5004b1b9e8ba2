import NIOCore

extension Cluster {
    /// A plain connection to `host` for a byte tunnel (tcp_proxy, a CONNECT the proxy terminates),
    /// counted in the cluster's and the host's connection stats as the pools count theirs.
    public func connectTunnel(to host: Host, on loop: any EventLoop,
                              initializer: @escaping @Sendable (any Channel) throws -> Void = { _ in })
        -> EventLoopFuture<any Channel>
    {
        let stats = self.stats
        stats.upstreamCxTotal.increment()
        host.stats.cxTotal.wrappingAdd(1, ordering: .relaxed)
        let future = connector.connect(to: host, on: loop, timeout: connectTimeout, initializer: initializer)
        future.whenComplete { result in
            switch result {
            case .success(let channel):
                stats.upstreamCxActive.increment()
                host.stats.cxActive.wrappingAdd(1, ordering: .relaxed)
                channel.closeFuture.whenComplete { _ in
                    stats.upstreamCxActive.decrement()
                    stats.upstreamCxDestroy.increment()
                    host.stats.cxActive.wrappingSubtract(1, ordering: .relaxed)
                }
            case .failure(let error):
                stats.upstreamCxConnectFail.increment()
                if case ChannelError.connectTimeout = error { stats.upstreamCxConnectTimeout.increment() }
                host.stats.cxConnectFail.wrappingAdd(1, ordering: .relaxed)
            }
        }
        return future
    }
}
