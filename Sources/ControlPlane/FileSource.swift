import Foundation
import XDSAPI
import XDSResource
#if canImport(Glibc)
import Glibc
#endif

/// What a scan of the config directory produced: every good resource, and every problem found.
public struct SourceState: Sendable {
    public var resources: [VersionedResource]
    /// Files that failed to parse or validate; their previous good resources are still served.
    public var errors: [ConfigError]
    /// Problems that do not stop serving (a route naming a cluster no file defines).
    public var warnings: [String]
    public var files: Int
}

/// The resource files under one directory, re-read when they change. Keeps each file's last good
/// resources, so a broken edit never removes what was being served.
public final class FileSource: @unchecked Sendable {
    public let directory: String
    private let parser: ResourceFileParser
    /// Only touched from the watcher's task (one at a time), hence @unchecked Sendable.
    private var files: [String: FileEntry] = [:]

    struct FileEntry {
        var signature: FileSignature
        var good: [VersionedResource]
        var error: ConfigError?
    }

    public init(directory: String, parser: ResourceFileParser = ResourceFileParser()) {
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.parser = parser
    }

    /// Paths and signatures of every resource file now, sorted (cheap: stat only).
    public func listFiles() -> [String: FileSignature] {
        var found: [String: FileSignature] = [:]
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return found }
        while let relative = enumerator.nextObject() as? String {
            guard relative.hasSuffix(".yaml") || relative.hasSuffix(".yml") || relative.hasSuffix(".json") else { continue }
            if relative.split(separator: "/").contains(where: { $0.hasPrefix(".") }) { continue }
            let path = directory + "/" + relative
            if let signature = FileSignature(path: path), signature.isRegularFile { found[path] = signature }
        }
        return found
    }

    /// Whether anything changed since the last `reload`.
    public func hasChanges() -> Bool {
        let now = listFiles()
        return now.count != files.count || now.contains { files[$0.key]?.signature != $0.value }
    }

    /// Re-reads changed files and validates the whole set.
    public func reload() -> SourceState {
        let now = listFiles()
        for path in files.keys where now[path] == nil { files[path] = nil }
        for (path, signature) in now where files[path]?.signature != signature {
            var entry = files[path] ?? FileEntry(signature: signature, good: [], error: nil)
            entry.signature = signature
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                // A file still being written changes under us: read it again on the next scan.
                guard FileSignature(path: path) == signature else { entry.signature = FileSignature.unknown; files[path] = entry; continue }
                entry.good = try parser.parse(text, file: path, scope: scope(of: path))
                entry.error = nil
            } catch let error as ConfigError {
                entry.error = error
            } catch {
                entry.error = ConfigError(file: path, reason: "\(error)")
            }
            files[path] = entry
        }
        return validate()
    }

    /// Cross-file checks: a name defined twice in one scope rejects the later file's new content
    /// (its previous good content stays if that does not clash too).
    private func validate() -> SourceState {
        var accepted: [String: VersionedResource] = [:]
        var resources: [VersionedResource] = []
        var errors: [ConfigError] = []
        for path in files.keys.sorted() {
            guard var entry = files[path] else { continue }
            if let error = entry.error { errors.append(error) }
            let clash = entry.good.first { accepted[Self.key($0)] != nil }
            if let clash {
                let other = accepted[Self.key(clash)]!
                errors.append(ConfigError(file: path, line: clash.line, fieldPath: "",
                                          reason: "duplicate \(ResourceType(typeURL: clash.typeURL)?.shortName ?? "") resource "
                                              + "'\(clash.name)' (also defined in \(other.file))"))
                entry.good = []
                files[path] = entry
                continue
            }
            for resource in entry.good {
                accepted[Self.key(resource)] = resource
                resources.append(resource)
            }
        }
        return SourceState(resources: resources, errors: errors, warnings: Self.referenceWarnings(resources),
                           files: files.count)
    }

    private static func key(_ resource: VersionedResource) -> String {
        "\(resource.typeURL)|\(resource.scope)|\(resource.name)"
    }

    func scope(of path: String) -> NodeScope {
        let parts = path.dropFirst(directory.count + 1).split(separator: "/")
        guard parts.count >= 3 else { return .all }
        switch parts[0] {
        case "nodes": return .cluster(String(parts[1]))
        case "node-ids": return .nodeID(String(parts[1]))
        default: return .all
        }
    }

    /// Routes naming clusters that no file defines: served anyway (the cluster may come later).
    static func referenceWarnings(_ resources: [VersionedResource]) -> [String] {
        let clusters = Set(resources.filter { $0.typeURL == TypeURL.cluster }.map(\.name))
        var warnings: [String] = []
        for resource in resources where resource.typeURL == TypeURL.routeConfiguration {
            guard let route = try? Envoy_Config_Route_V3_RouteConfiguration(unpackingAny: resource.resource) else { continue }
            for host in route.virtualHosts {
                for entry in host.routes {
                    if case .route(let action)? = entry.action, case .cluster(let name)? = action.clusterSpecifier,
                       !clusters.contains(name) {
                        warnings.append("\(resource.file): route '\(resource.name)' names cluster '\(name)', which no file defines")
                    }
                }
            }
        }
        return warnings
    }
}

/// What identifies a file's content without reading it: inode, size and modification time.
public struct FileSignature: Sendable, Equatable {
    var inode: UInt64
    var size: Int64
    var modified: Int64
    var isRegularFile: Bool

    static let unknown = FileSignature(inode: 0, size: -1, modified: 0, isRegularFile: false)

    init(inode: UInt64, size: Int64, modified: Int64, isRegularFile: Bool) {
        self.inode = inode
        self.size = size
        self.modified = modified
        self.isRegularFile = isRegularFile
    }

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        inode = UInt64(info.st_ino)
        size = Int64(info.st_size)
        modified = Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec)
        isRegularFile = (info.st_mode & S_IFMT) == S_IFREG
    }
}
