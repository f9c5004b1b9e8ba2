/// Which HTTP codec a listener's connections speak (the HCM's `codec_type`).
public enum DownstreamCodec: Sendable {
    /// HTTP/1.1, or HTTP/2 when the connection opens with the h2c preface (prior knowledge).
    case auto
    case http1
    case http2
}
