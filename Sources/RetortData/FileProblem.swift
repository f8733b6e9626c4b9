import Foundation

/// A file-system error (Foundation's `CocoaError`, or a POSIX error) said in words with its path: `results/x is a
/// file, not a folder`, `permission denied`, instead of `(NSCocoaErrorDomain error 512.)`.
public enum FileProblem {
    /// Whether `error` is a file-system error this type can describe.
    public static func isFileError(_ error: any Error) -> Bool {
        let error = error as NSError
        return error.domain == NSCocoaErrorDomain || error.domain == NSPOSIXErrorDomain
    }

    /// The path the error names, relative to the working directory when it lies inside it.
    public static func path(of error: any Error) -> String? {
        let error = error as NSError
        let path = error.userInfo[NSFilePathErrorKey] as? String ?? (error.userInfo[NSURLErrorKey] as? URL)?.path
        return path.map(display)
    }

    /// Whether the failed operation was a write (creating a file or a folder), rather than a read.
    public static func isWrite(_ error: any Error) -> Bool {
        let error = error as NSError
        guard error.domain == NSCocoaErrorDomain else { return true }
        return (512..<1024).contains(error.code) || error.code == CocoaError.fileNoSuchFile.rawValue
    }

    /// What went wrong, in words: names the ancestor that is a file when a folder was needed.
    public static func reason(_ error: any Error) -> String {
        let error = error as NSError
        let path = error.userInfo[NSFilePathErrorKey] as? String ?? (error.userInfo[NSURLErrorKey] as? URL)?.path
        if let path, let blocker = fileAncestor(of: path) { return "\(display(blocker)) is a file, not a folder" }
        let posix =
            error.domain == NSPOSIXErrorDomain
            ? error.code
            : (error.userInfo[NSUnderlyingErrorKey] as? NSError).flatMap {
                $0.domain == NSPOSIXErrorDomain ? $0.code : nil
            }
        switch posix.map(Int32.init(truncatingIfNeeded:)) {
        case ENOTDIR: return "a part of the path is a file, not a folder"
        case EACCES, EPERM: return "permission denied"
        case ENOSPC: return "no space left on the device"
        case EROFS: return "the file system is read-only"
        case ENOENT: return "no such file or folder"
        case EEXIST: return "something is already there"
        case EISDIR: return "it is a folder, not a file"
        default: break
        }
        if error.domain == NSCocoaErrorDomain {
            switch CocoaError.Code(rawValue: error.code) {
            case .fileNoSuchFile, .fileReadNoSuchFile: return "no such file or folder"
            case .fileReadNoPermission, .fileWriteNoPermission: return "permission denied"
            case .fileWriteFileExists: return "something is already there"
            case .fileWriteOutOfSpace: return "no space left on the device"
            case .fileWriteVolumeReadOnly: return "the file system is read-only"
            case .fileReadCorruptFile, .fileReadInapplicableStringEncoding: return "the file cannot be read as text"
            default: break
            }
        }
        if let posix { return String(cString: strerror(Int32(truncatingIfNeeded: posix))).lowercased() }
        return "an input/output error (code \(error.code))"
    }

    /// The nearest proper ancestor of `path` that exists and is not a folder, if any.
    static func fileAncestor(of path: String) -> String? {
        var url = URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent()
        while url.path != "/" && !url.path.isEmpty {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) {
                return isDirectory.boolValue ? nil : url.path
            }
            url = url.deletingLastPathComponent()
        }
        return nil
    }

    /// `path` relative to the working directory when it lies inside it.
    static func display(_ path: String) -> String {
        let standardized = URL(fileURLWithPath: path).standardizedFileURL.path
        let current = FileManager.default.currentDirectoryPath + "/"
        return standardized.hasPrefix(current) ? String(standardized.dropFirst(current.count)) : standardized
    }
}
