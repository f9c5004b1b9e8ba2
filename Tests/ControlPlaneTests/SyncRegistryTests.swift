import Synchronization
import Testing
import XDSAPI
@testable import ControlPlane

@Suite struct SyncRegistryTests {
    /// The registry asks each stream for its status when read, so what it shows is the stream's
    /// state at that moment; a stream that is gone (its status nil) is left out, and closed ones too.
    @Test func statusIsReadFromTheStreamWhenAskedFor() {
        let registry = SyncRegistry()
        let acked = Mutex<String?>(nil)
        var node = Envoy_Config_Core_V3_Node()
        node.id = "web-1"
        let first = registry.open(protocolName: "SotW") { [node] in
            (node, [.cluster: SyncRegistry.TypeStatus(sentVersion: "v1", ackedVersion: acked.withLock { $0 })])
        }
        let gone = registry.open(protocolName: "Delta") { nil }
        let closed = registry.open(protocolName: "SotW") { (nil, [:]) }
        registry.close(closed)
        #expect(registry.count == 2)
        #expect(registry.all().map(\.streamID) == [first])
        #expect(registry.all().first?.types[.cluster]?.ackedVersion == nil)
        acked.withLock { $0 = "v1" }
        #expect(registry.all().first?.types[.cluster]?.ackedVersion == "v1")
        #expect(registry.all().first?.node?.id == "web-1")
        registry.close(gone)
        #expect(registry.count == 1)
    }
}
