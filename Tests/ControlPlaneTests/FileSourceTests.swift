import Foundation
import Testing
import XDSAPI
import XDSResource
@testable import ControlPlane

@Suite struct FileSourceTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "meshd-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func write(_ relative: String, _ text: String) throws {
        let path = directory + "/" + relative
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    static let cluster = """
    "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
    name: web
    connect_timeout: 1s
    type: EDS
    eds_cluster_config: { eds_config: { ads: {} } }
    """

    @Test func readsTheThreeFileShapes() throws {
        try write("one.yaml", Self.cluster)
        try write("multi.yaml", """
        "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
        cluster_name: web
        ---
        "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
        name: main
        """)
        try write("sub/list.json", """
        {"version_info": "1", "resources": [{"@type": "type.googleapis.com/envoy.config.listener.v3.Listener", "name": "l"}]}
        """)
        let state = FileSource(directory: directory).reload()
        #expect(state.errors.isEmpty)
        #expect(Set(state.resources.map(\.name)) == ["web", "main", "l"])
        #expect(state.files == 3)
    }

    @Test func aBrokenFileKeepsItsLastGoodResources() throws {
        try write("c.yaml", Self.cluster)
        let source = FileSource(directory: directory)
        #expect(source.reload().resources.count == 1)
        try write("c.yaml", Self.cluster.replacingOccurrences(of: "type: EDS", with: "type: EDSS"))
        let state = source.reload()
        #expect(state.resources.map(\.name) == ["web"])
        let error = try #require(state.errors.first)
        #expect(error.file.hasSuffix("/c.yaml"))
        #expect(error.line == 4)
        #expect(error.fieldPath == "type")
        #expect(error.reason.contains("unknown enum value \"EDSS\""))
    }

    @Test func duplicatesAcrossFilesAreErrors() throws {
        try write("a.yaml", Self.cluster)
        try write("b.yaml", Self.cluster)
        let state = FileSource(directory: directory).reload()
        #expect(state.resources.count == 1)
        #expect(state.errors.first?.reason.contains("duplicate CDS resource 'web'") == true)
    }

    @Test func nodeFoldersScopeResources() throws {
        try write("nodes/frontend/l.yaml", "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l")
        try write("l.yaml", "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l\nstat_prefix: global")
        let state = FileSource(directory: directory).reload()
        #expect(state.errors.isEmpty, "the same name in different scopes is no duplicate")
        let cache = SnapshotCache()
        cache.update(state.resources)
        let frontend = cache.snapshot(for: NodeIdentity(id: "x", cluster: "frontend")).resources(ofType: TypeURL.listener)
        let other = cache.snapshot(for: NodeIdentity(id: "y", cluster: "backend")).resources(ofType: TypeURL.listener)
        #expect(frontend["l"]?.scope == .cluster("frontend"))
        #expect(other["l"]?.scope == .all)
    }

    @Test func routesToUnknownClustersAreWarnings() throws {
        try write("r.yaml", """
        "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
        name: main
        virtual_hosts: [{name: v, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: nowhere}}]}]
        """)
        let state = FileSource(directory: directory).reload()
        #expect(state.errors.isEmpty)
        #expect(state.warnings.first?.contains("names cluster 'nowhere'") == true)
    }

    @Test func versionsAreStableContentHashes() throws {
        try write("c.yaml", Self.cluster)
        let first = FileSource(directory: directory).reload().resources[0].version
        let second = FileSource(directory: directory).reload().resources[0].version
        #expect(first == second && first.count == 16)
    }

    @Test func hexIsSixteenLowerCaseDigits() {
        #expect(ContentHash.hex(0) == "0000000000000000")
        #expect(ContentHash.hex(0xab) == "00000000000000ab")
        #expect(ContentHash.hex(0x0123_4567_89ab_cdef) == "0123456789abcdef")
        #expect(ContentHash.hex(.max) == "ffffffffffffffff")
    }

    /// A type URL handed in (a shared constant) packs the same Any as the one made from the message.
    @Test func aGivenTypeURLPacksTheSameAny() throws {
        var secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
        secret.name = "default"
        secret.tlsCertificate.certificateChain.inlineString = "chain"
        let made = try ContentHash.packed(secret)
        let given = try ContentHash.packed(secret, typeURL: TypeURL.secret)
        #expect(made.resource.typeURL == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret")
        #expect(given.resource == made.resource && given.version == made.version)
    }
}

@Suite struct ResourceFileParserTests {
    @Test func syntaxErrorsInLaterDocumentsAreReported() {
        let text = "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l\n---\nthis: [is not yaml\n"
        let error = #expect(throws: ConfigError.self) {
            try ResourceFileParser().parse(text, file: "f.yaml", scope: .all)
        }
        #expect(error?.reason.hasPrefix("invalid YAML") == true)
        #expect(error?.line != nil)
    }

    @Test func mappingsWithoutTypeAreErrors() {
        let error = #expect(throws: ConfigError.self) {
            try ResourceFileParser().parse("name: l\n", file: "f.yaml", scope: .all)
        }
        #expect(error?.reason.contains("unknown key \"name\"") == true)
    }
}
