import Foundation
import RetortData
import RetortTestSupport
import Testing

/// Expects `body` to throw a ``DataError`` at `file:line` whose message contains every one of `fragments`;
/// returns the error for further checks.
@discardableResult
func expectDataError(
    code: DataError.Code = .badData, file: String?, line: Int?, mentions fragments: [String],
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) -> DataError? {
    let error = #expect(throws: DataError.self, sourceLocation: sourceLocation) { try body() }
    guard let error else { return nil }
    #expect(error.code == code, "code of: \(error)", sourceLocation: sourceLocation)
    #expect(error.file == file, "file of: \(error)", sourceLocation: sourceLocation)
    #expect(error.line == line, "line of: \(error)", sourceLocation: sourceLocation)
    for fragment in fragments {
        #expect(
            error.message.contains(fragment), "\"\(fragment)\" missing from: \(error.message)",
            sourceLocation: sourceLocation)
    }
    return error
}

/// Parses JSONL `lines` (joined with newlines) as if they came from `path`.
func parseRows(
    _ lines: [String], path: String = "data/train.jsonl", requireTeacher: Bool = true
) throws -> [ExampleRow] {
    try RowReader.parse(Data(lines.joined(separator: "\n").utf8), path: path, requireTeacher: requireTeacher)
}

/// A task folder written from raw JSONL lines and raw task.json text (none when `taskJSON` is nil); removed when the
/// last reference goes.
final class RawTask {
    let folder: URL

    init(train: [String], validation: [String], test: [String], taskJSON: String? = #"{"name": "raw"}"#) throws {
        folder = SyntheticTasks.temporaryFolder().appendingPathComponent("task")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, lines) in [("train", train), ("validation", validation), ("test", test)] {
            try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url(name + ".jsonl"))
        }
        if let taskJSON { try Data(taskJSON.utf8).write(to: url("task.json")) }
    }

    deinit {
        try? FileManager.default.removeItem(at: folder.deletingLastPathComponent())
    }

    func url(_ name: String) -> URL { folder.appendingPathComponent(name) }

    /// The path the loader names in messages for `name`.
    func path(_ name: String) -> String { url(name).relativePath }

    func load() throws -> TaskData { try TaskData.load(Job(task: folder)) }
}

/// A few valid numeric rows with labels `a` and `b`.
func numericLines(prefix: String, count: Int = 4) -> [String] {
    (0..<count).map { index in
        let label = index.isMultiple(of: 2) ? "a" : "b"
        return #"{"id": "\#(prefix)-\#(index)", "input": [\#(index), 1.5], "#
            + #""teacher": "\#(label)", "gold": "\#(label)"}"#
    }
}
