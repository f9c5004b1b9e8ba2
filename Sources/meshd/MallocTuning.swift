#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// glibc's allocator settings for a server that holds thousands of long-lived streams.
enum MallocTuning {
    /// Allocations from this size up are mapped on their own and unmapped when freed. A real
    /// Envoy's first request is ~60 KB and gRPC assembles it in one buffer per stream; at the
    /// default threshold (128 KB, raised further at run time) a burst of connecting proxies fills
    /// the heap with such buffers, and once freed they stay in meshd's RSS between the streams'
    /// long-lived allocations (~35 KB per proxy at 1,000 proxies, measured with meshd.sh).
    static let mmapThreshold: Int32 = 32 * 1024

    /// Applies the threshold unless `GLIBC_TUNABLES` sets one, which then wins. Returns whether
    /// glibc took it.
    @discardableResult
    static func apply(environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        #if canImport(Glibc)
        if environment["GLIBC_TUNABLES"]?.contains("mmap_threshold") == true { return false }
        // `mallopt` is declared in <malloc.h>, which Swift's Glibc module leaves out.
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return false }
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        let mmapThresholdParameter: Int32 = -3  // M_MMAP_THRESHOLD
        return mallopt(mmapThresholdParameter, mmapThreshold) == 1
        #else
        return false
        #endif
    }
}
