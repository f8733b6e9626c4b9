// swift-tools-version: 6.0
import Foundation
import PackageDescription

/// libFuzzer harnesses for every parser (scripts/fuzz.sh builds them with -sanitize=fuzzer,address and runs them).
/// Kept out of the root package so `swift build` and `make test` never see fuzzing flags.

/// The root package is a path dependency; its identity is its folder's name, whatever the checkout is called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

/// Harness name (the binary is fuzz-NAME) → its target and the Retort libraries it needs.
let harnesses: [(name: String, target: String, libraries: [String])] = [
    ("rows", "FuzzRows", ["RetortData"]),
    ("job", "FuzzJob", ["RetortData"]),
    ("catalog", "FuzzCatalog", ["RetortData", "RetortSearch"]),
    ("device", "FuzzDevice", ["RetortData"]),
    ("gateway-config", "FuzzGatewayConfig", ["RetortData", "RetortTeacher"]),
    ("prompt", "FuzzPrompt", ["RetortData", "RetortLabeling"]),
    ("request-json", "FuzzRequestJSON", ["RetortTeacher"]),
    ("sse", "FuzzSSE", ["RetortTeacher"]),
    ("safetensors", "FuzzSafetensors", ["RetortStudents"]),
    ("model-json", "FuzzModelJSON", ["RetortStudents"]),
    ("wordpiece", "FuzzWordPiece", ["RetortStudents"]),
    ("journal", "FuzzJournal", ["RetortData", "RetortSearch"]),
    ("history-export", "FuzzHistoryExport", ["RetortHistory"]),
]

let package = Package(
    name: "RetortFuzz",
    platforms: [.macOS(.v14)],
    products: harnesses.map { .executable(name: "fuzz-\($0.name)", targets: [$0.target]) },
    dependencies: [.package(path: "..")],
    targets: [.target(name: "FuzzSupport", path: "Sources/FuzzSupport")]
        + harnesses.map { harness in
            .executableTarget(
                name: harness.target,
                dependencies: ["FuzzSupport"] + harness.libraries.map { .product(name: $0, package: root) },
                path: "Sources/\(harness.target)"
            )
        },
    swiftLanguageModes: [.v6]
)
