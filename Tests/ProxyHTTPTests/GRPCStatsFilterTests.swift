import NIOCore
import Testing
@testable import ProxyHTTP

@Suite struct GRPCStatsFilterTests {
    func frame(_ payload: [UInt8]) -> [UInt8] {
        [0, UInt8(payload.count >> 24 & 0xff), UInt8(payload.count >> 16 & 0xff), UInt8(payload.count >> 8 & 0xff),
         UInt8(payload.count & 0xff)] + payload
    }

    @Test func countsMessagesAcrossChunkBoundaries() {
        let bytes = frame(Array(repeating: 7, count: 300)) + frame([]) + frame([1, 2, 3])
        for chunk in [1, 2, 5, 7, 64, bytes.count] {
            var counter = GRPCFrameCounter()
            var start = 0
            while start < bytes.count {
                counter.consume(ByteBuffer(bytes: bytes[start..<min(bytes.count, start + chunk)]))
                start += chunk
            }
            #expect(counter.messages == 3, "chunks of \(chunk)")
        }
    }

    @Test func onlyServiceMethodPathsAreCalls() {
        #expect(GRPCStatsFilter.Call(path: "/mesh.Echo/Unary")?.service == "mesh.Echo")
        #expect(GRPCStatsFilter.Call(path: "/mesh.Echo/Unary")?.method == "Unary")
        for path in ["/", "/only", "/a/b/c", "//m", "/s/"] {
            #expect(GRPCStatsFilter.Call(path: Substring(path)) == nil, "\(path)")
        }
    }
}
