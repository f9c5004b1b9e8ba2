import Testing
@testable import ProxyCore

@Suite struct XXHash64Tests {
    @Test(arguments: [
        ("", UInt64(0xEF46_DB37_51D8_E999)),
        ("a", UInt64(0xD24E_C4F1_A98C_6E5B)),
        ("abc", UInt64(0x44BC_2CF5_AD77_0999)),
    ])
    func knownValues(text: String, expected: UInt64) {
        #expect(XXHash64.hash(text) == expected)
    }

    @Test func longInputsUseTheStripedPath() {
        let text = String(repeating: "0123456789", count: 10)
        #expect(XXHash64.hash(text) == XXHash64.hash(text))
        #expect(XXHash64.hash(text) != XXHash64.hash(text + "x"))
        #expect(XXHash64.hash(text, seed: 1) != XXHash64.hash(text))
    }
}
