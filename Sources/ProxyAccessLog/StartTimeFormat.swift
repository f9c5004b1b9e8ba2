import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `%START_TIME(format)%`: strftime, plus Envoy's sub-second specifiers (`%f`, `%3f`, `%6f`,
/// `%9f`, `%E3S`...) and `%s`; the default is `2026-11-25T11:53:46.123Z`, in UTC.
struct StartTimeFormat: Sendable {
    let format: String

    init(_ format: String) {
        self.format = format
    }

    func render(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        var seconds = time_t(interval.rounded(.down))
        let nanos = Int(((interval - interval.rounded(.down)) * 1_000_000_000).rounded(.down))
        if format.isEmpty {
            var parts = tm()
            gmtime_r(&seconds, &parts)
            return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                          Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), nanos / 1_000_000)
        }
        // Sub-second specifiers and %s are expanded first; what remains goes to strftime.
        var expanded = ""
        let chars = Array(format)
        var index = 0
        func fraction(_ digits: Int) -> String {
            let padded = String(format: "%09d", nanos)
            return String(padded.prefix(max(1, min(9, digits))))
        }
        while index < chars.count {
            if chars[index] == "%", index + 1 < chars.count {
                let next = chars[index + 1]
                if next == "f" { expanded += fraction(9); index += 2; continue }
                if next == "s" { expanded += String(seconds); index += 2; continue }
                if next.isNumber, index + 2 < chars.count, chars[index + 2] == "f" {
                    expanded += fraction(next.wholeNumberValue!); index += 3; continue
                }
                if next == "E", index + 3 < chars.count, chars[index + 2].isNumber, chars[index + 3] == "S" {
                    var parts = tm()
                    gmtime_r(&seconds, &parts)
                    expanded += String(format: "%02d", Int(parts.tm_sec))
                    let digits = chars[index + 2].wholeNumberValue!
                    if digits > 0 { expanded += "." + fraction(digits) }
                    index += 4
                    continue
                }
                if next == "%" { expanded += "%%"; index += 2; continue }
            }
            expanded.append(chars[index])
            index += 1
        }
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [Int8](repeating: 0, count: 256)
        let count = strftime(&buffer, buffer.count, expanded, &parts)
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
