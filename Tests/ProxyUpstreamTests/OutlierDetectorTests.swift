import NIOCore
import ProxyCore
import Testing
import XDSAPI
@testable import ProxyUpstream

@Suite struct OutlierDetectorTests {
    func cluster(hosts: Int, _ configure: (inout Envoy_Config_Cluster_V3_OutlierDetection) -> Void) throws -> Cluster {
        var config = ClusterConfigTests.cluster(type: .static, addresses: (1...hosts).map { "10.0.0.\($0)" })
        var detection = Envoy_Config_Cluster_V3_OutlierDetection()
        configure(&detection)
        config.outlierDetection = detection
        return try ClusterConfigTests().build(config)
    }

    @Test func aStreakEjectsAndOthersServe() throws {
        let built = try cluster(hosts: 2) { $0.consecutive5Xx.value = 3 }
        let detector = try #require(built.outlierDetector)
        let bad = built.hosts[0]
        for status in [500, 503, 502] { detector.report(bad, status: status, hostCount: 2, random: 0) }
        #expect(bad.outlier.isEjected(at: .now()))
        #expect(built.stats.membershipHealthy.value == 1)
        #expect((0..<10).allSatisfy { _ in built.pickHost() === built.hosts[1] })
    }

    @Test func aSuccessBreaksTheStreak() throws {
        let built = try cluster(hosts: 2) { $0.consecutive5Xx.value = 2 }
        let detector = try #require(built.outlierDetector)
        let host = built.hosts[0]
        for status in [500, 200, 500] { detector.report(host, status: status, hostCount: 2, random: 0) }
        #expect(!host.outlier.isEjected(at: .now()))
    }

    @Test func maxEjectionPercentAllowsAtLeastOneHost() throws {
        let built = try cluster(hosts: 4) { $0.consecutive5Xx.value = 1 }  // default 10 %
        let detector = try #require(built.outlierDetector)
        detector.report(built.hosts[0], status: 500, hostCount: 4, random: 0)
        detector.report(built.hosts[1], status: 500, hostCount: 4, random: 0)
        #expect(built.hosts[0].outlier.isEjected(at: .now()))
        #expect(!built.hosts[1].outlier.isEjected(at: .now()), "a second ejection would pass 10 %")
        #expect(detector.ejected == 1)
    }

    @Test func ejectionTimeGrowsToItsCapAndShrinksWhileHealthy() throws {
        let built = try cluster(hosts: 2) { detection in
            detection.consecutive5Xx.value = 1
            detection.baseEjectionTime.seconds = 1
            detection.maxEjectionTime.seconds = 3
            detection.interval.seconds = 10
        }
        let detector = try #require(built.outlierDetector)
        let host = built.hosts[0]
        var later = NIODeadline.now()
        func ejectAndReturn() -> Int64 {
            let before = NIODeadline.now().uptimeNanoseconds
            detector.report(host, status: 500, hostCount: 2, random: 0)
            let seconds = (Int64(host.outlier.ejectedUntil.load(ordering: .relaxed)) - Int64(before)) / 1_000_000_000
            later = later + .seconds(seconds + 1)
            detector.evaluate(built.hosts, random: { 0 }, now: later)
            return seconds
        }
        // 1, 2, 3 seconds, then capped by max_ejection_time.
        #expect((0..<5).map { _ in ejectAndReturn() } == [1, 2, 3, 3, 3])
        #expect(!host.outlier.isEjected(at: later))
        // Each interval in service takes one off the multiplier (which stopped at 4: 4 s would pass the cap).
        #expect(host.outlier.ejectionBackoff.load(ordering: .relaxed) == 4)
        detector.evaluate(built.hosts, random: { 0 }, now: later + .seconds(10))
        detector.evaluate(built.hosts, random: { 0 }, now: later + .seconds(20))
        detector.evaluate(built.hosts, random: { 0 }, now: later + .seconds(30))
        #expect(host.outlier.ejectionBackoff.load(ordering: .relaxed) == 1)
    }

    @Test func gatewayFailuresAreDetectedButNotEnforcedByDefault() throws {
        let built = try cluster(hosts: 2) { $0.consecutive5Xx.value = 100 }
        let detector = try #require(built.outlierDetector)
        for _ in 0..<5 { detector.report(built.hosts[0], status: 502, hostCount: 2, random: 0) }
        #expect(!built.hosts[0].outlier.isEjected(at: .now()))
        #expect(detector.stats.detectedConsecutiveGatewayFailure.value == 1)
    }

    @Test func enforcedGatewayFailuresEjectOnlyOnGatewayErrors() throws {
        let built = try cluster(hosts: 2) { detection in
            detection.consecutive5Xx.value = 100
            detection.consecutiveGatewayFailure.value = 3
            detection.enforcingConsecutiveGatewayFailure.value = 100
        }
        let detector = try #require(built.outlierDetector)
        // A 500 is no gateway failure: it breaks the streak.
        for status in [502, 504, 500, 503, 502] { detector.report(built.hosts[0], status: status, hostCount: 2, random: 0) }
        #expect(!built.hosts[0].outlier.isEjected(at: .now()))
        detector.report(built.hosts[0], status: 504, hostCount: 2, random: 0)
        #expect(built.hosts[0].outlier.isEjected(at: .now()))
        #expect(detector.stats.enforcedConsecutiveGatewayFailure.value == 1)
    }

    @Test func successRateEjectsTheHostFarBelowTheMean() throws {
        let built = try cluster(hosts: 6) {
            $0.consecutive5Xx.value = 1000
            $0.maxEjectionPercent.value = 50
        }
        let detector = try #require(built.outlierDetector)
        for (index, host) in built.hosts.enumerated() {
            for request in 0..<100 {
                let failing = index == 0 ? request < 40 : request < 1
                detector.report(host, status: failing ? 503 : 200, hostCount: 6, random: 0)
            }
        }
        detector.evaluate(built.hosts, random: { 0 })
        #expect(built.hosts[0].outlier.isEjected(at: .now()))
        #expect(built.hosts.dropFirst().allSatisfy { !$0.outlier.isEjected(at: .now()) })
        #expect(detector.stats.enforcedSuccessRate.value == 1 && detector.stats.detectedSuccessRate.value == 1)
        detector.evaluate(built.hosts, random: { 0 })
        #expect(detector.stats.detectedSuccessRate.value == 1, "the interval's counts start again")
    }

    @Test func tooFewRequestsOrHostsMeanNoVerdict() throws {
        let built = try cluster(hosts: 4) { $0.consecutive5Xx.value = 1000 }
        let detector = try #require(built.outlierDetector)
        for host in built.hosts {
            for _ in 0..<100 { detector.report(host, status: host === built.hosts[0] ? 503 : 200, hostCount: 4, random: 0) }
        }
        detector.evaluate(built.hosts, random: { 0 })
        #expect(detector.stats.detectedSuccessRate.value == 0, "four hosts are under success_rate_minimum_hosts (5)")
    }

    @Test func failurePercentageDetectsAndEnforcesOnlyWhenAsked() throws {
        let built = try cluster(hosts: 5) {
            $0.consecutive5Xx.value = 1000
            $0.failurePercentageMinimumHosts.value = 2
            $0.failurePercentageRequestVolume.value = 10
            $0.failurePercentageThreshold.value = 50
        }
        let detector = try #require(built.outlierDetector)
        for host in built.hosts {
            for _ in 0..<10 { detector.report(host, status: host === built.hosts[1] ? 500 : 200, hostCount: 5, random: 0) }
        }
        detector.evaluate(built.hosts, random: { 0 })
        #expect(detector.stats.detectedFailurePercentage.value == 1)
        #expect(!built.hosts[1].outlier.isEjected(at: .now()), "enforcing_failure_percentage is 0 unless set")
    }

    @Test func splitLocalOriginErrorsHaveTheirOwnStreak() throws {
        let built = try cluster(hosts: 2) {
            $0.splitExternalLocalOriginErrors = true
            $0.consecutiveLocalOriginFailure.value = 3
            $0.consecutive5Xx.value = 3
        }
        let detector = try #require(built.outlierDetector)
        let host = built.hosts[0]
        // Two failed connects, a connection that worked, then 5xx answers: neither streak reaches three.
        for _ in 0..<2 { detector.reportLocalOrigin(host, failed: true, status: 503, hostCount: 2, random: 0) }
        detector.reportLocalOrigin(host, failed: false, status: 0, hostCount: 2, random: 0)
        for status in [500, 503] { detector.report(host, status: status, hostCount: 2, random: 0) }
        for _ in 0..<2 { detector.reportLocalOrigin(host, failed: true, status: 503, hostCount: 2, random: 0) }
        #expect(!host.outlier.isEjected(at: .now()), "local failures no longer count as 5xx")
        detector.reportLocalOrigin(host, failed: true, status: 503, hostCount: 2, random: 0)
        #expect(host.outlier.isEjected(at: .now()))
        #expect(detector.stats.enforcedConsecutiveLocalOriginFailure.value == 1)
        #expect(detector.stats.detectedConsecutive5xx.value == 0)
    }

    @Test func unsplitLocalOriginFailuresCountAsTheirStatus() throws {
        let built = try cluster(hosts: 2) { $0.consecutive5Xx.value = 2 }
        let detector = try #require(built.outlierDetector)
        let host = built.hosts[0]
        detector.reportLocalOrigin(host, failed: true, status: 503, hostCount: 2, random: 0)
        detector.reportLocalOrigin(host, failed: false, status: 0, hostCount: 2, random: 0)
        detector.reportLocalOrigin(host, failed: true, status: 504, hostCount: 2, random: 0)
        #expect(host.outlier.isEjected(at: .now()), "a working connection is no success for the 5xx streak")
    }

    @Test func failTrafficOnPanicLeavesNoHostToPick() throws {
        for fail in [false, true] {
            var config = ClusterConfigTests.cluster(type: .static, addresses: ["10.0.0.1", "10.0.0.2"])
            var detection = Envoy_Config_Cluster_V3_OutlierDetection()
            detection.consecutive5Xx.value = 1
            detection.maxEjectionPercent.value = 100
            config.outlierDetection = detection
            config.commonLbConfig.zoneAwareLbConfig.failTrafficOnPanic = fail
            let built = try ClusterConfigTests().build(config)
            let detector = try #require(built.outlierDetector)
            for host in built.hosts { detector.report(host, status: 500, hostCount: 2, random: 0) }
            #expect((built.pickHost() == nil) == fail, "in panic: every host, or none with fail_traffic_on_panic")
            #expect(built.stats.lbHealthyPanic.value == 1)
        }
    }
}
