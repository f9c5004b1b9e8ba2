import ProxyCore
import XDSAPI
import XDSResource

extension HTTP2Options {
    /// Envoy's `Http2ProtocolOptions`, checked against its documented ranges. Tuning fields
    /// meshproxy has no knob for (HPACK table size, frame flood limits) keep NIO's protections.
    public init(_ proto: Envoy_Config_Core_V3_Http2ProtocolOptions, path: String) throws {
        self.init()
        if proto.hasMaxConcurrentStreams {
            let value = Int(proto.maxConcurrentStreams.value)
            guard (1...2_147_483_647).contains(value) else {
                throw FieldError(path + ".max_concurrent_streams", "value must be in [1, 2147483647]")
            }
            maxConcurrentStreams = value
        }
        if proto.hasInitialStreamWindowSize {
            let value = Int(proto.initialStreamWindowSize.value)
            guard (65_535...2_147_483_647).contains(value) else {
                throw FieldError(path + ".initial_stream_window_size", "value must be in [65535, 2147483647]")
            }
            initialStreamWindowSize = value
        }
        if proto.hasInitialConnectionWindowSize {
            let value = Int(proto.initialConnectionWindowSize.value)
            guard (65_535...2_147_483_647).contains(value) else {
                throw FieldError(path + ".initial_connection_window_size", "value must be in [65535, 2147483647]")
            }
            initialConnectionWindowSize = value
        }
        allowConnect = proto.allowConnect
        streamErrorOnInvalidHTTPMessage = proto.hasOverrideStreamErrorOnInvalidHTTPMessage
            ? proto.overrideStreamErrorOnInvalidHTTPMessage.value : proto.streamErrorOnInvalidHTTPMessaging
    }
}
