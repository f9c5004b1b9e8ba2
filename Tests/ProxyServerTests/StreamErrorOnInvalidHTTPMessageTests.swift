import SwiftProtobuf
import Testing
import XDSAPI
@testable import ProxyServer

/// Which setting decides whether a malformed HTTP/2 request resets its stream or closes the
/// connection: the options' override, else the connection manager's field, else the deprecated
/// options field; closing by default.
@Suite struct StreamErrorOnInvalidHTTPMessageTests {
    func streamError(hcm: Bool?, override: Bool?, legacy: Bool = false) throws -> Bool {
        var proto = HCMProto()
        if let hcm { proto.streamErrorOnInvalidHTTPMessage = Google_Protobuf_BoolValue(hcm) }
        if let override { proto.http2ProtocolOptions.overrideStreamErrorOnInvalidHTTPMessage = Google_Protobuf_BoolValue(override) }
        proto.http2ProtocolOptions.streamErrorOnInvalidHTTPMessaging = legacy
        return try ConnectionManagerTemplate.http2Options(proto, path: "hcm").streamErrorOnInvalidHTTPMessage
    }

    @Test func precedence() throws {
        #expect(try !streamError(hcm: nil, override: nil))
        #expect(try streamError(hcm: true, override: nil))
        #expect(try !streamError(hcm: true, override: false))
        #expect(try streamError(hcm: false, override: true))
        #expect(try streamError(hcm: nil, override: nil, legacy: true))
        #expect(try !streamError(hcm: false, override: nil, legacy: true))
    }
}
