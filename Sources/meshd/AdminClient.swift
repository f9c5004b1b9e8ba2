import NIOCore
import NIOHTTP1
import NIOPosix

/// One GET on meshd's admin listener, for `meshd status`. NIO's HTTP/1.1 client rather than URLSession:
/// FoundationNetworking would link libcurl into a binary that is otherwise built with the Swift runtime
/// linked in statically.
enum AdminClient {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// The response's status and body; throws when the exchange does not end within `timeout`.
    static func get(host: String, port: Int, path: String,
                    timeout: Duration = .seconds(10)) async throws -> (status: HTTPResponseStatus, body: ByteBuffer) {
        try await withThrowingTaskGroup(of: (status: HTTPResponseStatus, body: ByteBuffer)?.self) { group in
            group.addTask { try await exchange(host: host, port: port, path: path) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let response = first else {
                throw Failure(description: "no response within \(timeout)")
            }
            return response
        }
    }

    private static func exchange(host: String, port: Int, path: String) async throws
        -> (status: HTTPResponseStatus, body: ByteBuffer) {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path)
            head.headers.add(name: "host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
            head.headers.add(name: "connection", value: "close")
            try await outbound.write(.head(head))
            try await outbound.write(.end(nil))
            var status: HTTPResponseStatus?
            var body = ByteBuffer()
            for try await part in inbound {
                switch part {
                case .head(let responseHead): status = responseHead.status
                case .body(var bytes): body.writeBuffer(&bytes)
                case .end:
                    guard let status else { throw Failure(description: "a response without a head") }
                    return (status, body)
                }
            }
            throw Failure(description: "the connection closed before the response ended")
        }
    }
}
