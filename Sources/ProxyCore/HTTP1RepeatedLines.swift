#if canImport(Glibc)
import Glibc
#endif

/// The header lines of the last head a connection's parser read, as they arrived, and the fields
/// made of them. Messages on one connection mostly repeat their lines (an upstream's `server` and
/// `content-type`, and `date` within the second; a client's `host`, `user-agent` and `accept`): a
/// line that is byte for byte the one in its place last time was checked then, and takes that
/// field's strings instead of making (and lower-casing) new ones.
public struct HTTP1RepeatedLines {
    /// Lines of a head up to this size are kept; a larger head's (long cookies, say) are not held
    /// for an idle connection.
    public static let keptLimit = 2048

    private let enabled: Bool
    private var bytes: [UInt8] = []
    /// Where each field's line (without its line end) is in `bytes`.
    private var lines: [Range<Int>] = []
    private var fields: [(String, String)] = []

    /// Remembers heads from one to the next (a parser's, for its connection).
    public init() {
        enabled = true
    }

    private init(enabled: Bool) {
        self.enabled = enabled
    }

    /// Remembers nothing (trailers, read once).
    public static var none: HTTP1RepeatedLines { HTTP1RepeatedLines(enabled: false) }

    /// The field made of the line in place `index` last time, when `line` is that line again.
    func field(at index: Int, ifSameAs line: UnsafeBufferPointer<UInt8>) -> (String, String)? {
        guard index < lines.count else { return nil }
        let span = lines[index]
        guard span.count == line.count else { return nil }
        let same = bytes.withUnsafeBufferPointer { kept in
            memcmp(kept.baseAddress! + span.lowerBound, line.baseAddress!, line.count) == 0
        }
        return same ? fields[index] : nil
    }

    /// The last head had `count` lines.
    func hasLines(_ count: Int) -> Bool {
        lines.count == count
    }

    /// Keeps a head's header lines (`block`: from its first line to the end of its last) and the
    /// fields made of them, in the storage the last head's took.
    mutating func remember(_ block: UnsafeRawBufferPointer, fields: [(String, String)]) {
        guard enabled else { return }
        guard block.count <= Self.keptLimit else {
            self = HTTP1RepeatedLines()
            return
        }
        bytes.removeAll(keepingCapacity: true)
        bytes.append(contentsOf: block.assumingMemoryBound(to: UInt8.self))
        lines.removeAll(keepingCapacity: true)
        var position = 0
        while let end = HTTP1Syntax.lineEnd(in: block, from: position) {
            lines.append(position..<end.contentEnd)
            position = end.next
        }
        self.fields = fields
    }
}
