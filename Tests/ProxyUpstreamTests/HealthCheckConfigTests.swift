import Foundation
import NIOCore
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
        guard case .http(let path, let host, let expected, _, _, _) = config.probe else {
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
        guard case .http(_, _, let expected, _, _, _) = config.probe else { return }
        #expect(expected == [200..<400])
    }

    @Test func whatIsMissingOrUnsupportedIsRefused() {
        #expect(throws: FieldError.self) { try check { _ in } }
        #expect(throws: FieldError.self) { try check { $0.httpHealthCheck.path = "" } }
        #expect(throws: FieldError.self) { try check { $0.customHealthCheck = .init() } }
        #expect(throws: FieldError.self) { try check { $0.httpHealthCheck.path = "/h"; $0.clearTimeout() } }
        #expect(throws: FieldError.self) { try check { $0.tcpHealthCheck.send.text = "50494e4" } }
        #expect(throws: FieldError.self) { try check { $0.tcpHealthCheck.send.text = "zz" } }
        #expect(throws: FieldError.self) {
            try check {
                $0.httpHealthCheck.path = "/h"
                var option = Envoy_Config_Core_V3_HeaderValueOption()
                option.header.key = "x-node"
                option.header.value = "%HOSTNAME%"
                $0.httpHealthCheck.requestHeadersToAdd = [option]
            }
        }
    }

    @Test func tcpPayloadsAreHexAndMatchedInOrderWithGapsAllowed() throws {
        let config = try check {
            $0.tcpHealthCheck.send.text = "50494E470D0A"
            var pong = Envoy_Config_Core_V3_HealthCheck.Payload()
            pong.text = "504f4e47"
            var end = Envoy_Config_Core_V3_HealthCheck.Payload()
            end.binary = Data("\r\n".utf8)
            $0.tcpHealthCheck.receive = [pong, end]
        }
        guard case .tcp(let send, let receive) = config.probe else {
            Issue.record("not a TCP check")
            return
        }
        #expect(send == Array("PING\r\n".utf8))
        #expect(receive == [Array("PONG".utf8), Array("\r\n".utf8)])
        #expect(TCPPayloadMatcher.matches(receive, in: Array("+PONG\r\n".utf8)))
        #expect(TCPPayloadMatcher.matches(receive, in: Array("PONG and then\r\n".utf8)))
        #expect(!TCPPayloadMatcher.matches(receive, in: Array("\r\nPONG".utf8)), "in order")
        #expect(!TCPPayloadMatcher.matches(receive, in: Array("PON".utf8)))
    }

    @Test func intervalsFollowTheHostsStateAndItsChanges() throws {
        let config = try check {
            $0.httpHealthCheck.path = "/h"
            $0.unhealthyInterval.seconds = 5
            $0.healthyEdgeInterval.seconds = 1
            $0.intervalJitter.nanos = 100_000_000
        }
        func next(failing: Bool, changed: Bool, traffic: Bool = true) -> TimeAmount {
            config.nextInterval(failing: failing, changed: changed, hadTraffic: traffic, random: 0)
        }
        #expect(next(failing: false, changed: false) == .milliseconds(200))
        #expect(next(failing: false, changed: true) == .seconds(1))
        #expect(next(failing: true, changed: false) == .seconds(5))
        #expect(next(failing: true, changed: true) == .seconds(5), "unhealthy_edge_interval defaults to unhealthy_interval")
        #expect(next(failing: false, changed: false, traffic: false) == .seconds(60))
        let quiet = try check {
            $0.httpHealthCheck.path = "/h"
            $0.noTrafficHealthyInterval.seconds = 90
        }
        #expect(quiet.nextInterval(failing: false, changed: false, hadTraffic: false, random: 0) == .seconds(90))
        #expect(quiet.nextInterval(failing: true, changed: false, hadTraffic: false, random: 0) == .seconds(60))
        for random in [UInt64(1), 12_345_678_901, .max] {
            let jittered = config.nextInterval(failing: false, changed: false, hadTraffic: true, random: random)
            #expect(jittered >= .milliseconds(200) && jittered < .milliseconds(300))
        }
    }
}
