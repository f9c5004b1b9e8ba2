import Foundation
import ProxyCore

/// Prints stats the way Envoy's admin does: `/stats` text and JSON, and `/stats/prometheus`.
public enum StatsFormatter {
    public struct Options: Sendable {
        public var filter: CompiledFilter?
        public var usedOnly = false
        public init(filter: CompiledFilter? = nil, usedOnly: Bool = false) {
            self.filter = filter
            self.usedOnly = usedOnly
        }
    }

    /// A `filter=` regular expression, matched anywhere in the stat name as Envoy does.
    public struct CompiledFilter: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>
        public init(_ pattern: String) throws { regex = try Regex(pattern) }
        func matches(_ name: String) -> Bool { (try? regex.firstMatch(in: name)) != nil }
    }

    private static func included(_ name: String, used: Bool, _ options: Options) -> Bool {
        if options.usedOnly, !used { return false }
        return options.filter?.matches(name) ?? true
    }

    /// Counters and gauges that pass the options, as (name, value), sorted together by name.
    private static func scalarValues(_ snapshot: StatsSnapshot, _ options: Options) -> [(String, String)] {
        var values: [(String, String)] = []
        for counter in snapshot.counters where included(counter.name, used: counter.used, options) {
            values.append((counter.name, String(counter.value)))
        }
        for gauge in snapshot.gauges where included(gauge.name, used: gauge.used, options) {
            values.append((gauge.name, String(gauge.value)))
        }
        return values.sorted { $0.0 < $1.0 }
    }

    /// Counters and gauges sorted together by name, then histograms.
    public static func text(_ snapshot: StatsSnapshot, _ options: Options = Options()) -> String {
        var out = ""
        for (name, value) in scalarValues(snapshot, options) { out += "\(name): \(value)\n" }
        for histogram in snapshot.histograms {
            let data = histogram.snapshot()
            guard included(histogram.name, used: data.count > 0, options) else { continue }
            out += "\(histogram.name): \(histogramSummary(data))\n"
        }
        return out
    }

    static let quantiles: [(String, Double)] = [
        ("P0", 0), ("P25", 0.25), ("P50", 0.5), ("P75", 0.75), ("P90", 0.9), ("P95", 0.95), ("P99", 0.99),
        ("P99.5", 0.995), ("P99.9", 0.999), ("P100", 1),
    ]

    /// `P0(a,b) P25(a,b) ...` (interval, cumulative); meshproxy has no flush interval, so both agree.
    static func histogramSummary(_ data: Histogram.Snapshot) -> String {
        guard data.count > 0 else { return "No recorded values" }
        return quantiles.map { label, q in
            let value = formatNumber(data.quantile(q))
            return "\(label)(\(value),\(value))"
        }.joined(separator: " ")
    }

    static func formatNumber(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        var text = String(format: "%.6g", value)
        if text.contains("e") { text = String(value) }
        return text
    }

    /// `{"stats":[{"name":..,"value":..}, ..., {"histograms": {...}}]}`.
    public static func json(_ snapshot: StatsSnapshot, _ options: Options = Options()) -> String {
        var parts = scalarValues(snapshot, options).map { "{\"name\":\(jsonString($0.0)),\"value\":\($0.1)}" }
        var histograms: [String] = []
        for histogram in snapshot.histograms {
            let data = histogram.snapshot()
            guard included(histogram.name, used: data.count > 0, options) else { continue }
            let values = quantiles.map { _, q in
                data.count > 0 ? "{\"interval\":\(formatNumber(data.quantile(q))),\"cumulative\":\(formatNumber(data.quantile(q)))}"
                    : "{\"interval\":null,\"cumulative\":null}"
            }
            histograms.append("{\"name\":\(jsonString(histogram.name)),\"values\":[\(values.joined(separator: ","))]}")
        }
        let supported = quantiles.map { formatNumber($0.1 * 100) }.joined(separator: ",")
        parts.append("{\"histograms\":{\"supported_quantiles\":[\(supported)],\"computed_quantiles\":[\(histograms.joined(separator: ","))]}}")
        return "{\"stats\":[\(parts.joined(separator: ","))]}"
    }

    /// Prometheus text exposition with Envoy's metric names (`envoy_` + tag-extracted name, dots to
    /// underscores) and labels, one `# TYPE` per metric.
    public static func prometheus(_ snapshot: StatsSnapshot, usedOnly: Bool = false) -> String {
        // Each stat's lines stay together and in order (a histogram's buckets ascend); stats sort by their first line.
        var families: [String: (type: String, series: [[String]])] = [:]
        func add(_ tags: StatTags, type: String, _ lines: [String]) {
            let name = metricName(tags.extractedName)
            families[name, default: (type, [])].series.append(lines)
        }
        for counter in snapshot.counters where !usedOnly || counter.used {
            add(counter.tags, type: "counter", ["\(metricName(counter.tags.extractedName))\(labels(counter.tags.tags)) \(counter.value)"])
        }
        for gauge in snapshot.gauges where !usedOnly || gauge.used {
            add(gauge.tags, type: "gauge", ["\(metricName(gauge.tags.extractedName))\(labels(gauge.tags.tags)) \(gauge.value)"])
        }
        for histogram in snapshot.histograms {
            let data = histogram.snapshot()
            if usedOnly, data.count == 0 { continue }
            let name = metricName(histogram.tags.extractedName)
            let cumulative = data.cumulativeCounts
            var lines: [String] = []
            for (index, bound) in histogram.bounds.enumerated() {
                let le = StatTags.Tag("le", formatNumber(bound))
                lines.append("\(name)_bucket\(labels(histogram.tags.tags + [le])) \(cumulative[index])")
            }
            lines.append("\(name)_bucket\(labels(histogram.tags.tags + [StatTags.Tag("le", "+Inf")])) \(data.count)")
            lines.append("\(name)_sum\(labels(histogram.tags.tags)) \(formatNumber(data.sum))")
            lines.append("\(name)_count\(labels(histogram.tags.tags)) \(data.count)")
            add(histogram.tags, type: "histogram", lines)
        }
        var out = ""
        for name in families.keys.sorted() {
            let family = families[name]!
            out += "# TYPE \(name) \(family.type)\n"
            for series in family.series.sorted(by: { $0.first ?? "" < $1.first ?? "" }) {
                for line in series { out += line + "\n" }
            }
        }
        return out
    }

    static func metricName(_ extracted: String) -> String {
        var name = "envoy_"
        for scalar in extracted.unicodeScalars {
            let ok = (scalar >= "a" && scalar <= "z") || (scalar >= "A" && scalar <= "Z")
                || (scalar >= "0" && scalar <= "9") || scalar == "_" || scalar == ":"
            name.unicodeScalars.append(ok ? scalar : "_")
        }
        return name
    }

    static func labels(_ tags: [StatTags.Tag]) -> String {
        guard !tags.isEmpty else { return "" }
        let parts = tags.map { tag -> String in
            let escaped = tag.value.replacingOccurrences(of: "\\", with: "\\\\")
                .replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
            return "\(tag.name)=\"\(escaped)\""
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}
