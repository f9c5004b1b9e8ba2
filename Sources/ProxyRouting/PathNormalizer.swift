import ProxyCore

/// The HTTP connection manager's path normalization, as Envoy applies it before routing (and sends
/// the result upstream): `normalize_path` turns backslashes into slashes, decodes percent-encoded
/// unreserved characters and removes `.` and `..` segments (RFC 3986 5.2.4); `merge_slashes` folds
/// runs of slashes. The query is left as it is.
public struct PathNormalizer: Sendable, Equatable {
    public var normalize: Bool
    public var mergeSlashes: Bool

    public init(normalize: Bool, mergeSlashes: Bool) {
        self.normalize = normalize
        self.mergeSlashes = mergeSlashes
    }

    public var isActive: Bool { normalize || mergeSlashes }

    /// `uri` (path and query) with its path normalized; the same string when nothing changes.
    public func apply(to uri: String) -> String {
        let queryStart = uri.firstIndex(of: "?") ?? uri.endIndex
        var path = Array(uri[..<queryStart].utf8)
        if normalize { path = Self.removingDotSegments(Self.decodingUnreserved(path.map { $0 == UInt8(ascii: "\\") ? UInt8(ascii: "/") : $0 })) }
        if mergeSlashes { path = Self.mergingSlashes(path) }
        let normalized = String(decoding: path, as: UTF8.self)
        return queryStart == uri.endIndex ? normalized : normalized + uri[queryStart...]
    }

    /// `%41` becomes `A`, `%7e` becomes `~`; other escapes (`%2f`, `%3a`) stay as they were written.
    static func decodingUnreserved(_ path: [UInt8]) -> [UInt8] {
        guard path.contains(UInt8(ascii: "%")) else { return path }
        var out: [UInt8] = []
        out.reserveCapacity(path.count)
        var index = 0
        while index < path.count {
            if path[index] == UInt8(ascii: "%"), index + 2 < path.count,
               let high = path[index + 1].asciiHexDigitValue, let low = path[index + 2].asciiHexDigitValue {
                let byte = high << 4 | low
                if isUnreserved(byte) {
                    out.append(byte)
                    index += 3
                    continue
                }
            }
            out.append(path[index])
            index += 1
        }
        return out
    }

    /// RFC 3986's remove_dot_segments over a path that starts with a slash.
    static func removingDotSegments(_ path: [UInt8]) -> [UInt8] {
        let slash = UInt8(ascii: "/"), dot = UInt8(ascii: ".")
        var segments: [ArraySlice<UInt8>] = []
        let parts = path.split(separator: slash, omittingEmptySubsequences: false).dropFirst()
        for (offset, part) in parts.enumerated() {
            let last = offset == parts.count - 1
            if part.elementsEqual([dot]) {
                if last { segments.append([]) }
            } else if part.elementsEqual([dot, dot]) {
                if !segments.isEmpty { segments.removeLast() }
                if last { segments.append([]) }
            } else {
                segments.append(part)
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(path.count)
        for segment in segments {
            out.append(slash)
            out.append(contentsOf: segment)
        }
        return out.isEmpty ? [slash] : out
    }

    static func mergingSlashes(_ path: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(path.count)
        for byte in path where !(byte == UInt8(ascii: "/") && out.last == UInt8(ascii: "/")) { out.append(byte) }
        return out
    }

    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): true
        default: false
        }
    }
}
