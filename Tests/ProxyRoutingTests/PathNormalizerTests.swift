import Testing
@testable import ProxyRouting

@Suite struct PathNormalizerTests {
    let both = PathNormalizer(normalize: true, mergeSlashes: true)

    @Test(arguments: [
        ("/a/../b", "/b"), ("/a/./b/", "/a/b/"), ("/a/%2e%2e/b", "/b"), ("/a/b/..", "/a/"), ("/..", "/"),
        ("/%7euser/%41", "/~user/A"), ("/a%2fb", "/a%2fb"), ("/a\\b", "/a/b"), ("/a/b?x=/../y", "/a/b?x=/../y"),
        ("//a//b", "/a/b"), ("/a/%2e%2E%2fb", "/a/..%2fb"),
    ])
    func normalizesAsEnvoyDoes(input: String, expected: String) {
        #expect(both.apply(to: input) == expected)
    }

    @Test func eachOptionAlone() {
        #expect(PathNormalizer(normalize: false, mergeSlashes: true).apply(to: "//a/../b") == "/a/../b")
        #expect(PathNormalizer(normalize: true, mergeSlashes: false).apply(to: "//a/./b") == "//a/b")
    }
}
