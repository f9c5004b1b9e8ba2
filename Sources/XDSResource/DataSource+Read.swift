import Foundation
import XDSAPI

extension Envoy_Config_Core_V3_DataSource {
    /// The bytes this data source names: a file read now, inline bytes or text, or an environment
    /// variable. Errors name the field path, as every config error does.
    public func read(path: String) throws -> [UInt8] {
        switch specifier {
        case .filename(let file):
            guard let data = FileManager.default.contents(atPath: file) else {
                throw FieldError(path + ".filename", "cannot read \(file)")
            }
            return [UInt8](data)
        case .inlineBytes(let data): return [UInt8](data)
        case .inlineString(let text): return Array(text.utf8)
        case .environmentVariable(let name):
            guard let value = ProcessInfo.processInfo.environment[name] else {
                throw FieldError(path + ".environment_variable", "environment variable \(name) is not set")
            }
            return Array(value.utf8)
        case nil:
            throw FieldError(path, "a filename, inline_bytes, inline_string or environment_variable is required")
        }
    }

    /// Where the bytes come from, as `/certs` shows it: the file's path, or `<inline>`.
    public var sourceDescription: String {
        if case .filename(let file)? = specifier { return file }
        return "<inline>"
    }
}
