import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Linux inotify on a directory tree: a background thread turns kernel events into a "something
/// changed" flag, so the watcher scans files only when told to (plus a slow safety scan). Absent
/// (nil) where inotify is not available; the watcher then polls.
final class InotifyWatch: @unchecked Sendable {
    private let fd: Int32
    private let root: String
    private let dirty = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)
    /// Only touched by the reader thread after init.
    private var watched = Set<String>()

    private static let mask = UInt32(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE
        | IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

    init?(directory: String) {
        #if os(Linux)
        let fd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        self.fd = fd
        self.root = directory
        addWatches()
        let thread = Thread { [self] in readLoop() }
        thread.name = "meshd-inotify"
        thread.start()
        #else
        return nil
        #endif
    }

    /// True once per batch of changes since the last call.
    func consumeChanges() -> Bool {
        dirty.exchange(false, ordering: .acquiringAndReleasing)
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    /// Watches the root and every directory below it (new ones are added as they appear).
    private func addWatches() {
        var directories = [root]
        if let enumerator = FileManager.default.enumerator(atPath: root) {
            while let relative = enumerator.nextObject() as? String {
                var isDirectory: ObjCBool = false
                let path = root + "/" + relative
                if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
                    directories.append(path)
                }
            }
        }
        for directory in directories where !watched.contains(directory) {
            if inotify_add_watch(fd, directory, Self.mask) >= 0 { watched.insert(directory) }
        }
    }

    private func readLoop() {
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        while !stopped.load(ordering: .relaxed) {
            var descriptor = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&descriptor, 1, 500) > 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            guard count > 0 else { continue }
            // Directories may have been created or replaced: watch whatever is there now.
            watched.removeAll()
            addWatches()
            dirty.store(true, ordering: .releasing)
        }
        close(fd)
    }
}
