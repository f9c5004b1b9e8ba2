import ProxyAccessLog

/// Header additions and removals from a route, its virtual host and its route configuration,
/// flattened at compile time in Envoy's order (most specific first, so the route configuration's
/// overwrites win), so a request applies one list.
public struct HeaderEdits: Sendable, Equatable {
    public enum AppendAction: Sendable, Equatable {
        case appendIfExistsOrAdd
        case addIfAbsent
        case overwriteIfExistsOrAdd
        case overwriteIfExists
    }

    public struct Addition: Sendable, Equatable {
        public var name: String
        /// The literal value, or the format's text when `format` is set.
        public var value: String
        public var action: AppendAction
        /// A value with command operators (`%DOWNSTREAM_REMOTE_ADDRESS%`...), rendered per request.
        public var format: AccessLogFormat?

        public init(name: String, value: String, action: AppendAction = .appendIfExistsOrAdd,
                    format: AccessLogFormat? = nil) {
            self.name = name.lowercased()
            self.value = value
            self.action = action
            self.format = format
        }

        public static func == (lhs: Addition, rhs: Addition) -> Bool {
            lhs.name == rhs.name && lhs.value == rhs.value && lhs.action == rhs.action
                && (lhs.format == nil) == (rhs.format == nil)
        }

        /// Whether this value needs the request's context.
        public var isFormatted: Bool { format != nil }
    }

    public var requestAdd: [Addition] = []
    public var requestRemove: [String] = []
    public var responseAdd: [Addition] = []
    public var responseRemove: [String] = []

    public init() {}

    public var isEmpty: Bool {
        requestAdd.isEmpty && requestRemove.isEmpty && responseAdd.isEmpty && responseRemove.isEmpty
    }

    /// This level's edits followed by a broader level's.
    public func then(_ broader: HeaderEdits) -> HeaderEdits {
        var merged = self
        merged.requestAdd += broader.requestAdd
        merged.requestRemove += broader.requestRemove
        merged.responseAdd += broader.responseAdd
        merged.responseRemove += broader.responseRemove
        return merged
    }

    /// Applies removals then additions to `headers` (lower-case names, in order); `render` gives
    /// formatted values theirs (an empty rendering adds nothing, as Envoy skips empty values).
    public static func apply(remove: [String], add: [Addition], to headers: inout [(String, String)],
                             render: (AccessLogFormat) -> String = { _ in "" }) {
        if !remove.isEmpty {
            headers.removeAll { header in remove.contains(header.0) }
        }
        for var addition in add {
            if let format = addition.format {
                addition.value = render(format)
                if addition.value.isEmpty { continue }
            }
            let exists = headers.contains { $0.0 == addition.name }
            switch addition.action {
            case .appendIfExistsOrAdd:
                headers.append((addition.name, addition.value))
            case .addIfAbsent:
                if !exists { headers.append((addition.name, addition.value)) }
            case .overwriteIfExistsOrAdd:
                if exists {
                    overwrite(addition, in: &headers)
                } else {
                    headers.append((addition.name, addition.value))
                }
            case .overwriteIfExists:
                if exists { overwrite(addition, in: &headers) }
            }
        }
    }

    private static func overwrite(_ addition: Addition, in headers: inout [(String, String)]) {
        var replaced = false
        headers = headers.compactMap { header in
            guard header.0 == addition.name else { return header }
            if replaced { return nil }
            replaced = true
            return (header.0, addition.value)
        }
    }
}
