import Foundation
import Logging
import ProxyTLS
import XDSAPI
import XDSResource

/// SDS from files (`sds_config.path_config_source`): each file holds a DiscoveryResponse of Secrets,
/// as Envoy reads them. Files are read when a TLS context names them and again whenever their bytes
/// change; a file that does not parse or holds an invalid secret is reported and the secrets read
/// from it before keep serving.
struct FileSecrets {
    /// By reference key (`<path>#<name>`).
    private(set) var secrets: [String: SecretProto] = [:]
    private var contents: [String: Data] = [:]
    private let loader = ConfigLoader(registry: .meshproxy)
    private let logger = Logger(label: "config")

    /// Reads `paths` whose contents changed; true when any secret changed.
    mutating func reload(_ paths: Set<String>) -> (changed: Bool, errors: [String]) {
        var changed = false
        var errors: [String] = []
        for path in paths.sorted() {
            guard let data = FileManager.default.contents(atPath: path) else {
                if contents[path] != nil || !secrets.keys.contains(where: { $0.hasPrefix(path + "#") }) {
                    errors.append("\(path): cannot read the SDS file")
                }
                continue
            }
            guard data != contents[path] else { continue }
            contents[path] = data
            do {
                let response = try loader.decode(Envoy_Service_Discovery_V3_DiscoveryResponse.self,
                                                 yaml: String(decoding: data, as: UTF8.self), file: path)
                var read: [String: SecretProto] = [:]
                for (index, resource) in response.resources.enumerated() {
                    let secret = try SecretProto(unpackingAny: resource)
                    do {
                        try SecretCheck.validate(secret)
                    } catch let error as FieldError {
                        throw FieldError("resources[\(index)].\(error.fieldPath)", error.reason)
                    }
                    read[path + "#" + secret.name] = secret
                }
                for key in secrets.keys where key.hasPrefix(path + "#") && read[key] == nil { secrets[key] = nil }
                for (key, secret) in read where secrets[key] != secret {
                    secrets[key] = secret
                    changed = true
                }
                logger.info("SDS file \(path): \(read.count) secret(s)")
            } catch {
                errors.append("\(path): \(error)")
                logger.warning("SDS file \(path) rejected, the secrets read from it before keep serving: \(error)")
            }
        }
        return (changed, errors)
    }
}
