/// Type URLs of the xDS resource types, as Envoy sends and expects them.
public enum TypeURL {
    public static let prefix = "type.googleapis.com/"
    public static let listener = prefix + "envoy.config.listener.v3.Listener"
    public static let routeConfiguration = prefix + "envoy.config.route.v3.RouteConfiguration"
    public static let cluster = prefix + "envoy.config.cluster.v3.Cluster"
    public static let clusterLoadAssignment = prefix + "envoy.config.endpoint.v3.ClusterLoadAssignment"
    public static let secret = prefix + "envoy.extensions.transport_sockets.tls.v3.Secret"

    /// The message name of a type URL: whatever follows the last `/`.
    public static func messageName(of url: String) -> String {
        guard let slash = url.lastIndex(of: "/") else { return url }
        return String(url[url.index(after: slash)...])
    }
}
