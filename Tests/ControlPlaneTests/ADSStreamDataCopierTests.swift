import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing
@testable import ControlPlane

@Suite struct ADSStreamDataCopierTests {
    func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ADSStreamDataCopier())
        return channel
    }

    /// A DATA payload that is a slice of a larger read comes out as a buffer of its own (its size
    /// rounded up to a power of two) with the same bytes, so whoever keeps it keeps only those.
    @Test func aSliceOfALargeReadIsCopiedToItsOwnSize() throws {
        let channel = try channel()
        var read = ByteBuffer(repeating: 0x61, count: 8192)
        read.setString("ack", at: 4000)
        let slice = read.getSlice(at: 4000, length: 300)!
        #expect(slice.storageCapacity >= 8192)
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(slice), endStream: true)))
        guard case .data(let data)? = try channel.readInbound(as: HTTP2Frame.FramePayload.self),
              case .byteBuffer(let copy) = data.data else {
            Issue.record("expected a DATA payload")
            return
        }
        #expect(copy == slice)
        #expect(copy.storageCapacity == 512, "NIO rounds a buffer's room up to a power of two")
        #expect(data.endStream)
        #expect(try channel.finish().isClean)
    }

    /// Frames other than DATA pass as they came.
    @Test func otherFramesPassUntouched() throws {
        let channel = try channel()
        let headers = HPACKHeaders([(":path", "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources")])
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: headers)))
        guard case .headers(let received)? = try channel.readInbound(as: HTTP2Frame.FramePayload.self) else {
            Issue.record("expected a HEADERS payload")
            return
        }
        #expect(received.headers == headers)
        #expect(try channel.finish().isClean)
    }
}
