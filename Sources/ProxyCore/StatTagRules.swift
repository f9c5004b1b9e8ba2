/// `stats_config.stats_tags` and `use_all_default_tags`: which tags a stat carries into Prometheus
/// labels. Fixed tags come first, then the built-in ones (unless turned off, when the full name is
/// the metric's name), then each custom extractor's, as Envoy orders them. Applied when a stat is
/// made (or listed, for per-code counters), never when it counts.
public struct StatTagRules: Sendable {
    /// A custom extractor: given a stat's full name, the part to take out of the name and the tag's value.
    public typealias Extractor = @Sendable (_ fullName: String) -> (removed: String, value: String)?

    public var useDefaultTags: Bool
    public var fixed: [StatTags.Tag]
    public var extractors: [(name: String, extract: Extractor)]

    public init(useDefaultTags: Bool = true, fixed: [StatTags.Tag] = [], extractors: [(name: String, extract: Extractor)] = []) {
        self.useDefaultTags = useDefaultTags
        self.fixed = fixed
        self.extractors = extractors
    }

    var isIdentity: Bool { useDefaultTags && fixed.isEmpty && extractors.isEmpty }

    public func apply(fullName: String, to tags: StatTags) -> StatTags {
        guard !isIdentity else { return tags }
        var name = useDefaultTags ? tags.extractedName : fullName
        var result = fixed + (useDefaultTags ? tags.tags : [])
        for (tagName, extract) in extractors {
            guard let (removed, value) = extract(fullName) else { continue }
            if !removed.isEmpty, let range = name.firstRange(of: removed) { name.removeSubrange(range) }
            result.append(StatTags.Tag(tagName, value))
        }
        return StatTags(extractedName: name, tags: result)
    }
}
