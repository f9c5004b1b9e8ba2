import Foundation
import ProxyCore
import SwiftProtobuf
import XDSAPI
import XDSResource

extension AccessLogger {
    static let fileType = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
    static let stdoutType = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
    static let stderrType = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"

    /// The `access_log` list of an HCM or TCP proxy, checked and compiled. Opens the files it names.
    public static func compile(_ protos: [Envoy_Config_Accesslog_V3_AccessLog], path: String) throws -> [AccessLogger] {
        try protos.enumerated().map { index, proto in
            try AccessLogger(proto, path: "\(path)[\(index)]")
        }
    }

    init(_ proto: Envoy_Config_Accesslog_V3_AccessLog, path: String) throws {
        guard case .typedConfig(let any)? = proto.configType else {
            throw FieldError(path, "an access logger needs a typed_config")
        }
        let format: AccessLogFormat
        let sinkPath: String
        let configPath = path + ".typed_config"
        do {
            switch any.typeURL {
            case TypeURL.prefix + Self.fileType:
                let file = try Envoy_Extensions_AccessLoggers_File_V3_FileAccessLog(unpackingAny: any)
                guard !file.path.isEmpty else { throw FieldError(configPath + ".path", "a path is required") }
                sinkPath = file.path
                switch file.accessLogFormat {
                case .format(let text)?: format = try AccessLogFormat(text: text.isEmpty ? AccessLogFormat.defaultText : text)
                case .jsonFormat(let json)?, .typedJsonFormat(let json)?:
                    format = try AccessLogFormat(json: Self.template(json), omitEmptyValues: false)
                case .logFormat(let substitution)?: format = try Self.format(substitution, path: configPath + ".log_format")
                case nil: format = .default
                }
            case TypeURL.prefix + Self.stdoutType:
                let stdout = try Envoy_Extensions_AccessLoggers_Stream_V3_StdoutAccessLog(unpackingAny: any)
                sinkPath = "/dev/stdout"
                format = stdout.accessLogFormat != nil ? try Self.format(stdout.logFormat, path: configPath + ".log_format") : .default
            case TypeURL.prefix + Self.stderrType:
                let stderr = try Envoy_Extensions_AccessLoggers_Stream_V3_StderrAccessLog(unpackingAny: any)
                sinkPath = "/dev/stderr"
                format = stderr.accessLogFormat != nil ? try Self.format(stderr.logFormat, path: configPath + ".log_format") : .default
            default:
                throw FieldError(path, "Didn't find a registered implementation for '\(proto.name)' with type URL: '\(any.typeURL)'")
            }
        } catch let error as AccessLogFormatError {
            throw FieldError(configPath, error.description)
        }
        let sink: AccessLogSink
        do {
            sink = try AccessLogSinks.shared.sink(path: sinkPath)
        } catch let error as AccessLogFormatError {
            throw FieldError(configPath + ".path", error.description)
        }
        self.init(filter: proto.hasFilter ? try AccessLogFilter(proto.filter, path: path + ".filter") : nil,
                  format: format, sink: sink)
    }

    static func format(_ substitution: Envoy_Config_Core_V3_SubstitutionFormatString, path: String) throws -> AccessLogFormat {
        if !substitution.formatters.isEmpty {
            throw FieldError(path + ".formatters", "formatter extensions are not supported")
        }
        switch substitution.format {
        case .textFormat(let text)?:
            return try AccessLogFormat(text: text)
        case .textFormatSource(let source)?:
            switch source.specifier {
            case .inlineString(let text)?: return try AccessLogFormat(text: text)
            case .inlineBytes(let bytes)?: return try AccessLogFormat(text: String(decoding: bytes, as: UTF8.self))
            case .filename(let file)?:
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw FieldError(path + ".text_format_source.filename", "cannot read \(file)")
                }
                return try AccessLogFormat(text: text)
            default:
                throw FieldError(path + ".text_format_source", "an inline_string, inline_bytes or filename is required")
            }
        case .jsonFormat(let json)?:
            return try AccessLogFormat(json: template(json), omitEmptyValues: substitution.omitEmptyValues)
        case nil:
            return .default
        }
    }

    /// A JSON format's template; keys come out sorted (the config's order does not survive decoding).
    static func template(_ json: Google_Protobuf_Struct) throws -> AccessLogFormat.JSONTemplate {
        .object(try json.fields.sorted { $0.key < $1.key }.map { ($0.key, try template($0.value)) })
    }

    static func template(_ value: Google_Protobuf_Value) throws -> AccessLogFormat.JSONTemplate {
        switch value.kind {
        case .stringValue(let text)?: return .format(try Segment.parse(text))
        case .numberValue(let number)?:
            return .literal(number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number))
        case .boolValue(let flag)?: return .literal(flag ? "true" : "false")
        case .structValue(let nested)?: return try template(nested)
        case .listValue(let list)?: return .list(try list.values.map(template))
        case .nullValue?, nil: return .literal("null")
        }
    }
}

extension AccessLogFilter {
    init(_ proto: Envoy_Config_Accesslog_V3_AccessLogFilter, path: String) throws {
        func comparison(_ filter: Envoy_Config_Accesslog_V3_ComparisonFilter, path: String) throws -> (Comparison, Int64) {
            let op: Comparison
            switch filter.op {
            case .eq: op = .equal
            case .ge: op = .greaterOrEqual
            case .le: op = .lessOrEqual
            case .ne: op = .notEqual
            case .UNRECOGNIZED(let value): throw FieldError(path + ".op", "unknown comparison \(value)")
            }
            return (op, Int64(filter.value.defaultValue))
        }
        switch proto.filterSpecifier {
        case .statusCodeFilter(let filter)?:
            let (op, value) = try comparison(filter.comparison, path: path + ".status_code_filter.comparison")
            self = .statusCode(op, value)
        case .durationFilter(let filter)?:
            let (op, value) = try comparison(filter.comparison, path: path + ".duration_filter.comparison")
            self = .duration(op, value)
        case .notHealthCheckFilter?:
            self = .notHealthCheck
        case .runtimeFilter(let filter)?:
            let percent = filter.hasPercentSampled ? filter.percentSampled : {
                var whole = Envoy_Type_V3_FractionalPercent()
                whole.numerator = 0
                return whole
            }()
            let denominator: UInt64
            switch percent.denominator {
            case .hundred: denominator = 100
            case .tenThousand: denominator = 10_000
            case .million: denominator = 1_000_000
            case .UNRECOGNIZED(let value): throw FieldError(path + ".runtime_filter.percent_sampled.denominator", "unknown denominator \(value)")
            }
            self = .runtime(numerator: UInt64(percent.numerator), denominator: denominator)
        case .responseFlagFilter(let filter)?:
            var flags: ResponseFlags = []
            for (index, code) in filter.flags.enumerated() {
                guard ResponseFlags.envoyCodes.contains(code) else {
                    throw FieldError("\(path).response_flag_filter.flags[\(index)]", "unknown response flag '\(code)'")
                }
                if let flag = ResponseFlags(code: code) { flags.insert(flag) }
            }
            self = filter.flags.isEmpty ? .responseFlags([]) : (flags.isEmpty ? .or([]) : .responseFlags(flags))
        case .andFilter(let filter)?:
            self = .and(try filter.filters.enumerated().map { try AccessLogFilter($1, path: "\(path).and_filter.filters[\($0)]") })
        case .orFilter(let filter)?:
            self = .or(try filter.filters.enumerated().map { try AccessLogFilter($1, path: "\(path).or_filter.filters[\($0)]") })
        default:
            throw FieldError(path, "this access log filter is not supported yet")
        }
    }
}
