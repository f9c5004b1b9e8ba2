#if canImport(Glibc)
import Glibc
#endif

/// The process's resident set size, read from /proc (Linux); 0 where that is unavailable.
public enum ProcessMemory {
    public static func residentBytes() -> Int {
        guard let file = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(file) }
        var size = 0
        var resident = 0
        guard fscanf_wrapper(file, &size, &resident) == 2 else { return 0 }
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    private static func fscanf_wrapper(_ file: UnsafeMutablePointer<FILE>, _ size: inout Int, _ resident: inout Int) -> Int {
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return 0 }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        let fields = String(decoding: bytes, as: UTF8.self).split(separator: " ")
        guard fields.count > 1, let first = Int(fields[0]), let second = Int(fields[1]) else { return 0 }
        size = first
        resident = second
        return 2
    }
}
