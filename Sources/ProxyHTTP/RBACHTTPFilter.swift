import ProxyCore
import ProxyRouting
import SwiftProtobuf

/// `envoy.filters.http.rbac`: the policies (ProxyRouting's `RBACFilter`) checked against the
/// request and its connection; a denial is Envoy's 403 `RBAC: access denied`.
struct RBACHTTPFilter: HTTPFilter, HTTPFilterFactory {
    static let configType = RBACFilterProto.protoMessageName
    let rbac: RBACFilter

    static func make(_ config: Google_Protobuf_Any, name: String, context: HTTPFilterContext, path: String) throws
        -> any HTTPFilter
    {
        RBACHTTPFilter(rbac: try RBACFilter(try RBACFilterProto(unpackingAny: config), statPrefix: context.statPrefix,
                                            store: context.store, path: path))
    }

    func decodeHeaders(_ request: HTTPFilterRequest) -> HTTPFilterDecision {
        let head = request.head
        let channel = request.channel
        let rbacRequest = RBACRequest(
            path: request.path,
            header: { name in
                switch name {
                case ":method": return head.method.rawValue
                case ":path": return head.uri
                case ":authority": return head.headers.first(name: "host")
                default:
                    let values = head.headers[canonicalForm: name]
                    return values.isEmpty ? nil : values.joined(separator: ",")
                }
            },
            directRemoteIP: channel?.remoteAddress?.ipAddress.flatMap(CIDRRange.parse),
            localIP: channel?.localAddress?.ipAddress.flatMap(CIDRRange.parse),
            localPort: channel?.localAddress?.port, tls: request.tls)
        guard let denied = rbac.check(rbacRequest) else { return .proceed }
        return HTTPFilterDecision(reply: .rbacDenied(policy: denied))
    }
}
