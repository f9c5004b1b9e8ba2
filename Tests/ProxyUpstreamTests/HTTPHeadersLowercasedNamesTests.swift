import NIOHTTP1
import Testing
@testable import ProxyUpstream

@Suite struct HTTPHeadersLowercasedNamesTests {
    @Test func namesAreLowerCasedAndValuesKept() {
        let headers: HTTPHeaders = ["Content-Type": "Text/Plain", "server": "Envoy", "X-A": "1"]
        let lowered = headers.withLowercasedNames()
        #expect(lowered.map(\.name) == ["content-type", "server", "x-a"])
        #expect(lowered.map(\.value) == ["Text/Plain", "Envoy", "1"])
        let already: HTTPHeaders = ["date": "x", "content-length": "0"]
        #expect(already.withLowercasedNames().map(\.name) == ["date", "content-length"])
    }
}
