import ArgumentParser
import Foundation
import RetortData
import RetortHistory
import RetortNumerics
import RetortSearch
import RetortStudents

/// Maps every error to `path:line: error: message` on stderr and a sysexits code
/// (64 usage, 65 bad data, 66 missing input, 70 internal, 73 cannot create output, 74 I/O).
enum ErrorReporting {
    static func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as DataError {
            let lines = [error] + error.more
            for item in lines { printError(item.headline.replacingFirstColonSpace()) }
            throw ExitCode(exitCode(for: error.code))
        } catch let error as StudentError {
            printError(error.location.map { "\($0): error: \(error.message)" } ?? "error: \(error.message)")
            throw ExitCode(65)
        } catch let error as SearchError {
            printError("error: \(error.message)")
            throw ExitCode(65)
        } catch let error as HistoryError {
            printError(error.description)
            throw ExitCode(65)
        } catch let error as NumericsError {
            printError("error: \(error.message)")
            throw ExitCode(70)
        } catch let error as ExitCode {
            throw error
        } catch let error as CleanExit {
            throw error
        } catch  where FileProblem.isFileError(error) {
            let path = FileProblem.path(of: error).map { " \($0)" } ?? ""
            if FileProblem.isWrite(error) {
                printError(
                    "error: cannot create\(path): \(FileProblem.reason(error)); choose another output path (--out)")
                throw ExitCode(73)
            }
            printError("error: cannot read\(path): \(FileProblem.reason(error))")
            throw ExitCode(66)
        } catch {
            printError("error: \(error)")
            throw ExitCode(74)
        }
    }

    static func exitCode(for code: DataError.Code) -> Int32 {
        switch code {
        case .usage: 64
        case .badData: 65
        case .missingInput: 66
        case .cannotCreateOutput: 73
        case .io: 74
        }
    }

    static func printError(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

extension String {
    /// `FILE:LINE: message` → `FILE:LINE: error: message`; a bare message → `error: message`.
    func replacingFirstColonSpace() -> String {
        guard let range = range(of: ": ") else { return "error: " + self }
        let location = self[..<range.lowerBound]
        if location.contains(" ") { return "error: " + self }
        return location + ": error: " + self[range.upperBound...]
    }
}

/// Prints a line to stdout immediately (progress is read while a search runs).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// `url` as a path relative to the working directory when it lies inside it, else absolute; `..` resolved.
func displayPath(_ url: URL) -> String {
    let path = url.standardizedFileURL.path
    let current = FileManager.default.currentDirectoryPath + "/"
    return path.hasPrefix(current) ? String(path.dropFirst(current.count)) : path
}

/// Where progress lines go: stdout, or stderr when stdout carries `--json`.
func progressLog(json: Bool) -> @Sendable (String) -> Void {
    if json { return { line in ErrorReporting.printError(line) } }
    return { line in say(line) }
}
