import ProxyCore
import ProxyUpstream
import SwiftProtobuf
import Testing
import XDSAPI

@Suite struct UpstreamProtocolTests {
    typealias Options = Envoy_Extensions_Upstreams_Http_V3_HttpProtocolOptions

    func cluster(_ options: Options?) throws -> Envoy_Config_Cluster_V3_Cluster {
        var config = ClusterConfigTests.cluster(type: .static, addresses: ["10.0.0.1"])
        if let options {
            config.typedExtensionProtocolOptions["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] =
                try Google_Protobuf_Any(message: options, typePrefix: "type.googleapis.com")
        }
        return config
    }

    @Test func http1IsTheDefault() throws {
        let built = try ClusterConfigTests().build(try cluster(nil))
        #expect(built.upstreamProtocol == .http1)
    }

    @Test func explicitHTTP2TakesItsOptions() throws {
        var options = Options()
        options.explicitHTTPConfig.http2ProtocolOptions.maxConcurrentStreams.value = 50
        options.commonHTTPProtocolOptions.maxRequestsPerConnection.value = 1000
        let built = try ClusterConfigTests().build(try cluster(options))
        #expect(built.upstreamProtocol == .http2)
    }

    @Test func theClustersOlderHTTP2FieldStillWorks() throws {
        var config = try cluster(nil)
        config.http2ProtocolOptions = Envoy_Config_Core_V3_Http2ProtocolOptions()
        #expect(try ClusterConfigTests().build(config).upstreamProtocol == .http2)
    }

    @Test func downstreamProtocolConfigFollowsTheClient() throws {
        var options = Options()
        options.useDownstreamProtocolConfig = .init()
        #expect(try ClusterConfigTests().build(try cluster(options)).upstreamProtocol == .downstream)
    }

    @Test func windowsOutsideEnvoysRangeAreErrors() throws {
        var options = Options()
        options.explicitHTTPConfig.http2ProtocolOptions.initialStreamWindowSize.value = 1000
        let error = #expect(throws: ClusterConfigError.self) { try ClusterConfigTests().build(try cluster(options)) }
        #expect(error?.fieldPath == "typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config.http2_protocol_options.initial_stream_window_size")
    }

    @Test func http3IsRefused() throws {
        var options = Options()
        options.explicitHTTPConfig.http3ProtocolOptions = .init()
        #expect(throws: ClusterConfigError.self) { try ClusterConfigTests().build(try cluster(options)) }
    }
}
