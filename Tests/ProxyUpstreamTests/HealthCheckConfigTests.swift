import Testing
import XDSAPI
import XDSResource
@testable import ProxyUpstream

@Suite struct HealthCheckConfigTests {
    func check(_ configure: (inout Envoy_Config_Core_V3_HealthCheck) -> Void) throws -> HealthCheckConfig {
        var proto = Envoy_Config_Core_V3_HealthCheck()
        proto.timeout.seconds = 1
        proto.interval.nanos = 200_000_000
        proto.unhealthyThreshold.value = 3
        proto.healthyThreshold.value = 2
        configure(&proto)
        return try HealthCheckConfig(proto, path: "health_checks[0]")
    }

    @Test func httpDefaultsToStatus200AndNoTrafficInterval60s() throws {
        let config = try check { $0.httpHealthCheck.path = "/healthz" }
        guard case .http(let path, let host, let expected) = config.probe else {
            Issue.record("not an HTTP check")
            return
        }
        #expect(path == "/healthz" && host == nil && expected == [200..<201])
        #expect(config.noTrafficInterval == .seconds(60) && config.interval == .milliseconds(200))
        #expect(config.unhealthyThreshold == 3 && config.healthyThreshold == 2)
    }

    @Test func grpcChecksNameTheirServiceAndAuthority() throws {
        let config = try check {
            $0.grpcHealthCheck.serviceName = "checkout"
            $0.grpcHealthCheck.authority = "checkout.internal"
        }
        guard case .grpc(let service, let authority) = config.probe else {
            Issue.record("not a gRPC check")
            return
        }
        #expect(service == "checkout" && authority == "checkout.internal")
        #expect(throws: FieldError.self) { try self.check { $0.grpcHealthCheck.initialMetadata = [.init()] } }
    }

    @Test func expectedStatusRanges() throws {
        let config = try check {
            $0.httpHealthCheck.path = "/ready"
            var range = Envoy_Type_V3_Int64Range()
            range.start = 200
            range.end = 400
            $0.httpHealthCheck.expectedStatuses = [range]
        }
        guard case .http(_, _, let expected) = config.probe else { return }
        #expect(expected == [200..<400])
    }

    @Test func whatIsMissingOrUnsupportedIsRefused() {
        #expect(throws: FieldError.self) { try check { _ in } }
        #expect(throws: FieldError.self) { try check { $0.httpHealthCheck.path = "" } }
        #expect(throws: FieldError.self) { try check { $0.customHealthCheck = .init() } }
        #expect(throws: FieldError.self) { try check { $0.httpHealthCheck.path = "/h"; $0.clearTimeout() } }
        #expect(throws: FieldError.self) { try check { $0.tcpHealthCheck.send.text = "50494e47" } }
    }
}
