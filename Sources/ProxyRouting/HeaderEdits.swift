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
        public var value: String
        public var action: AppendAction

        public init(name: String, value: String, action: AppendAction = .appendIfExistsOrAdd) {
            self.name = name.lowercased()
            self.value = value
            self.action = action
        }
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

    /// Applies removals then additions to `headers` (lower-case names, in order).
    public static func apply(remove: [String], add: [Addition], to headers: inout [(String, String)]) {
        if !remove.isEmpty {
            headers.removeAll { header in remove.contains(header.0) }
        }
        for addition in add {
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
