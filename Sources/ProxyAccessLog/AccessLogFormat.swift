import Foundation
import XDSResource

/// A compiled access log format: Envoy's text format (`%COMMAND(args):max%` operators between
/// literal text) or its JSON format (an object whose string values are text formats).
public struct AccessLogFormat: Sendable {
    indirect enum JSONTemplate: Sendable {
        case format([Segment])
        case literal(String)  // a non-string JSON value, already rendered
        case object([(String, JSONTemplate)])
        case list([JSONTemplate])
    }

    enum Body: Sendable {
        case text([Segment])
        case json(JSONTemplate, omitEmpty: Bool)
    }

    let body: Body

    /// Envoy's default format, used when a logger names none.
    public static let defaultText = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" "
        + "%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% "
        + "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" "
        + "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"

    public static let `default` = try! AccessLogFormat(text: defaultText)

    public init(text: String) throws {
        body = .text(try Segment.parse(text))
    }

    /// A format where `literalPercent` (header values' `%%`) stands for one `%`.
    public init(text: String, literalPercent: String) throws {
        let pieces = text.components(separatedBy: literalPercent)
        var segments: [Segment] = []
        for (index, piece) in pieces.enumerated() {
            if index > 0 { segments.append(.literal("%")) }
            segments += try Segment.parse(piece)
        }
        body = .text(segments)
    }

    init(json: JSONTemplate, omitEmptyValues: Bool) {
        body = .json(json, omitEmpty: omitEmptyValues)
    }

    /// The line for `entry`; a value that is not there prints as `missing` (`-` in access logs,
    /// nothing in header values).
    public func render(_ entry: AccessLogEntry, missing: String = "-") -> String {
        switch body {
        case .text(let segments):
            var out = ""
            for segment in segments { out += segment.text(entry, missing: missing) }
            return out
        case .json(let template, let omitEmpty):
            var out = ""
            Self.renderJSON(template, entry, omitEmpty: omitEmpty, into: &out)
            return out + "\n"
        }
    }

    private static func renderJSON(_ template: JSONTemplate, _ entry: AccessLogEntry, omitEmpty: Bool,
                                   into out: inout String) {
        switch template {
        case .literal(let text):
            out += text
        case .format(let segments):
            if segments.count == 1, case .command(let command) = segments[0] {
                switch command.value(entry) {
                case .none: out += "null"
                case .number(let number): out += String(number)
                case .string(let text): JSONText.appendQuoted(text, to: &out)
                }
            } else {
                var text = ""
                for segment in segments { text += segment.text(entry) }
                JSONText.appendQuoted(text, to: &out)
            }
        case .object(let fields):
            out += "{"
            var first = true
            for (key, value) in fields {
                if omitEmpty, case .format(let segments) = value, segments.count == 1,
                   case .command(let command) = segments[0], case .none = command.value(entry) { continue }
                if !first { out += "," }
                first = false
                JSONText.appendQuoted(key, to: &out)
                out += ":"
                renderJSON(value, entry, omitEmpty: omitEmpty, into: &out)
            }
            out += "}"
        case .list(let items):
            out += "["
            for (index, item) in items.enumerated() {
                if index > 0 { out += "," }
                renderJSON(item, entry, omitEmpty: omitEmpty, into: &out)
            }
            out += "]"
        }
    }
}

/// A format error, in Envoy's words where it has them.
public struct AccessLogFormatError: Error, CustomStringConvertible {
    public let description: String
}

/// A piece of a text format: literal text or one command operator.
enum Segment: Sendable {
    case literal(String)
    case command(Command)

    func text(_ entry: AccessLogEntry, missing: String = "-") -> String {
        switch self {
        case .literal(let text): return text
        case .command(let command):
            switch command.value(entry) {
            case .none: return missing
            case .number(let number): return String(number)
            case .string(let text): return text
            }
        }
    }

    /// Splits a format into literals and `%COMMAND(args):max%` operators. A `%` that starts no
    /// well-formed operator is kept as text.
    static func parse(_ format: String) throws -> [Segment] {
        var segments: [Segment] = []
        var literal = ""
        let chars = Array(format)
        var index = 0
        while index < chars.count {
            guard chars[index] == "%", let (command, end) = try Command.parse(chars, from: index) else {
                literal.append(chars[index])
                index += 1
                continue
            }
            if !literal.isEmpty { segments.append(.literal(literal)); literal = "" }
            segments.append(.command(command))
            index = end
        }
        if !literal.isEmpty { segments.append(.literal(literal)) }
        return segments
    }
}
