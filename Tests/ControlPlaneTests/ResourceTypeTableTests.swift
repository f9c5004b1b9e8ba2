import Testing
@testable import ControlPlane

@Suite struct ResourceTypeTableTests {
    @Test func setReplaceAndRemoveByType() {
        var table = ResourceTypeTable<String>()
        #expect(table[.cluster] == nil)
        table[.endpoint] = "e1"
        table[.cluster] = "c1"
        #expect(table[.endpoint] == "e1")
        #expect(table[.cluster] == "c1")
        table[.cluster] = "c2"
        #expect(table[.cluster] == "c2")
        #expect(table[.endpoint] == "e1")
        table[.endpoint] = nil
        #expect(table[.endpoint] == nil)
        #expect(table[.cluster] == "c2")
        #expect(ResourceType.allCases.filter { table[$0] != nil } == [.cluster])
        #expect(ResourceType.allCases.filter { table.contains($0) } == [.cluster])
    }
}
