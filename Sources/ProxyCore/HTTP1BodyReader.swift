import NIOCore

/// Reads an HTTP/1.x message body as its head framed it: a fixed length, chunked (extensions
/// ignored, trailers kept), or until the connection closes. Body bytes are handed on as slices of
/// what was read; nothing is copied.
public struct HTTP1BodyReader {
    public enum Framing: Sendable {
        case length(Int)
        case chunked
        case untilClose
    }

    public enum Progress {
        /// Every byte given was read; the body goes on.
        case needMore
        /// The body ended, with these trailers (none: nil); what is left in the buffer comes after it.
        case complete(trailers: [(String, String)]?)
    }

    private enum State {
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
    }

    private var state: State
    /// Longest trailers taken (Envoy bounds them as it bounds a head).
    private let maximumTrailersSize: Int

    public init(_ framing: Framing, maximumTrailersSize: Int = HTTP1Syntax.maximumHeadSize) {
        self.maximumTrailersSize = maximumTrailersSize
        switch framing {
        case .length(let length): state = .fixed(remaining: length)
        case .chunked: state = .chunkSize
        case .untilClose: state = .untilClose
        }
    }

    /// Whether the body runs until the connection closes.
    public var endsWithConnection: Bool {
        if case .untilClose = state { return true }
        return false
    }

    /// Reads what it can of the body from `buffer`; what is left there is an incomplete chunk line
    /// or trailers (to be read with the next bytes), or what follows the body.
    public mutating func read(_ buffer: inout ByteBuffer, body: (ByteBuffer) -> Void) throws -> Progress {
        while true {
            switch state {
            case .fixed(let remaining):
                if remaining == 0 { return .complete(trailers: nil) }
                guard buffer.readableBytes > 0 else { return .needMore }
                let length = min(remaining, buffer.readableBytes)
                body(buffer.readSlice(length: length)!)
                state = .fixed(remaining: remaining - length)
            case .chunkSize:
                guard let size = try HTTP1Syntax.readChunkSize(&buffer) else { return .needMore }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard buffer.readableBytes > 0 else { return .needMore }
                let length = min(remaining, buffer.readableBytes)
                body(buffer.readSlice(length: length)!)
                state = length == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - length)
            case .chunkDataEnd:
                guard let lineEnd = HTTP1Syntax.lineEnd(in: buffer, limit: 2) else {
                    if buffer.readableBytes >= 2 { throw HTTP1ParseError(description: "missing CRLF after chunk data") }
                    return .needMore
                }
                guard lineEnd.contentLength == 0 else { throw HTTP1ParseError(description: "missing CRLF after chunk data") }
                buffer.moveReaderIndex(forwardBy: lineEnd.length)
                state = .chunkSize
            case .trailers:
                var ignored = HTTP1HeadFraming()
                let parsed = try buffer.withUnsafeReadableBytes { try HTTP1Syntax.parseFields($0, from: 0, framing: &ignored) }
                guard let parsed, parsed.length <= maximumTrailersSize else {
                    if buffer.readableBytes > maximumTrailersSize {
                        throw HTTP1ParseError(description: "trailers too large")
                    }
                    return .needMore
                }
                buffer.moveReaderIndex(forwardBy: parsed.length)
                state = .fixed(remaining: 0)
                return .complete(trailers: parsed.fields.isEmpty ? nil : parsed.fields)
            case .untilClose:
                if buffer.readableBytes > 0 { body(buffer.readSlice(length: buffer.readableBytes)!) }
                return .needMore
            }
        }
    }
}
