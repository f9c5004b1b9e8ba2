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

    @Test func readAndModifyInPlace() {
        var table = ResourceTypeTable<[String]>()
        table[.listener] = ["a"]
        #expect(table.read(.listener) { $0.count } == 1)
        #expect(table.read(.route) { $0.count } == nil)
        #expect(table.modify(.listener) { $0.append("b"); return $0.count } == 2)
        #expect(table.modify(.route) { $0.append("x") } == nil)
        #expect(table[.listener] == ["a", "b"])
        #expect(table[.route] == nil)
    }
}
