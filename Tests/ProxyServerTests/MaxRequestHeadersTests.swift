import SwiftProtobuf
import Testing
import XDSAPI
@testable import ProxyServer

@Suite struct MaxRequestHeadersTests {
    func bytes(_ kilobytes: UInt32?) throws -> Int {
        var hcm = HCMProto()
        if let kilobytes { hcm.maxRequestHeadersKb = Google_Protobuf_UInt32Value(kilobytes) }
        return try ConnectionManagerTemplate.maxRequestHeadersBytes(hcm, path: "hcm")
    }

    @Test func envoysDefaultAndBounds() throws {
        #expect(try bytes(nil) == 60 * 1024)
        #expect(try bytes(2) == 2048)
        #expect(try bytes(8192) == 8192 * 1024)
        #expect(throws: ListenerConfigError.self) { try bytes(0) }
        #expect(throws: ListenerConfigError.self) { try bytes(8193) }
    }
}
