import NIOCore
import NIOHTTP1

/// What an HTTP/1 parser emitted, as text to compare: an entry per head and per end, and each
/// message's body parts joined into one, so any split of the input into reads gives the same.
public struct PartTranscript: Equatable, CustomStringConvertible {
    public private(set) var events: [String] = []

    public init() {}

    public mutating func head(_ text: String) {
        events.append(text)
    }

    public mutating func body(_ bytes: ByteBuffer) {
        if let last = events.last, last.hasPrefix("body ") {
            events[events.count - 1] = last + String(buffer: bytes)
        } else {
            events.append("body " + String(buffer: bytes))
        }
    }

    public mutating func end(_ trailers: HTTPHeaders?) {
        events.append("end" + (trailers.map { " [" + Self.fields($0) + "]" } ?? ""))
    }

    /// `name=value` pairs in order, joined by commas.
    public static func fields(_ headers: HTTPHeaders) -> String {
        headers.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
    }

    public var description: String { events.joined(separator: " | ") }

    /// Feeds `text` to `parse` in one piece, or in reads of `chunk` bytes, each appended to what the
    /// last parse left; returns what is left at the end.
    public static func feed(_ text: String, chunk: Int?, parse: (inout ByteBuffer) throws -> Void) rethrows -> String {
        var pending = ByteBuffer()
        let bytes = Array(text.utf8)
        let size = chunk ?? max(bytes.count, 1)
        var offset = 0
        repeat {
            let end = min(offset + size, bytes.count)
            pending.writeBytes(bytes[offset..<end])
            offset = end
            try parse(&pending)
        } while offset < bytes.count
        return String(buffer: pending)
    }

    /// Parses the whole text and then the same bytes a byte at a time and in threes (`parse(nil)`,
    /// `parse(1)`, `parse(3)`): a head or chunk line cut anywhere must parse the same. Returns the
    /// whole parse's transcript, and the first read size that gave another transcript or left
    /// other bytes, if any.
    public static func everySplit(_ parse: (_ chunk: Int?) throws -> (transcript: PartTranscript, left: String))
        rethrows -> (transcript: String, differingSplit: Int?)
    {
        let whole = try parse(nil)
        for chunk in [1, 3] {
            let split = try parse(chunk)
            if split.transcript != whole.transcript || split.left != whole.left {
                return (whole.transcript.description, chunk)
            }
        }
        return (whole.transcript.description, nil)
    }
}
