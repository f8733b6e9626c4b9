// swift-tools-version: 6.0
import PackageDescription

/// The pipeline, one target per stage (DESIGN.md): data → students → evals → search → reports → CLI.
let package = Package(
    name: "Retort",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "retort", targets: ["retort"]),
        .library(name: "RetortData", targets: ["RetortData"]),
        .library(name: "RetortStudents", targets: ["RetortStudents"]),
        .library(name: "RetortSearch", targets: ["RetortSearch"]),
        .library(name: "RetortHistory", targets: ["RetortHistory"]),
        .library(name: "RetortTeacher", targets: ["RetortTeacher"]),
        .library(name: "RetortLabeling", targets: ["RetortLabeling"]),
        .library(name: "RetortDeployments", targets: ["RetortDeployments"]),
        .library(name: "RetortUsage", targets: ["RetortUsage"]),
        .library(name: "RetortGateway", targets: ["RetortGateway"]),
        .library(name: "RetortGatewayTesting", targets: ["RetortGatewayTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]
        ),
        /// zlib, for the gzip history exports (the starter history ships compressed).
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(name: "RetortNumerics", dependencies: ["CBLAS"]),
        .target(name: "RetortData", dependencies: ["RetortNumerics", "Yams"]),
        .target(name: "RetortStudents", dependencies: ["RetortNumerics", "RetortData"]),
        .target(name: "RetortEvals", dependencies: ["RetortNumerics", "RetortData", "Yams"]),
        .target(
            name: "RetortSearch",
            dependencies: ["RetortNumerics", "RetortData", "RetortStudents", "RetortEvals", "Yams"]
        ),
        .target(name: "RetortReports", dependencies: ["RetortSearch", "RetortData", "RetortEvals", "RetortStudents"]),
        .target(
            name: "RetortHistory",
            dependencies: [
                "RetortNumerics", "RetortData", "RetortStudents", "RetortSearch", "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        /// Teacher access: wire formats, JSON, the dispatcher (retries, failover), breakers and budgets, the gateway
        /// config, the ledger (SQLite, or PostgreSQL for replicas), metrics and token usage.
        .target(
            name: "RetortTeacher",
            dependencies: [
                "RetortData", "RetortNumerics",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),
        /// Teacher data: `retort label` (prompts, label matching, the answer cache, batch labelling), capture export
        /// and log ingest.
        .target(
            name: "RetortLabeling",
            dependencies: [
                "RetortData", "RetortTeacher", "Yams",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        /// Deployed students: `retort deploy` (a run's recommendation onto a route), deployment and shadow records in
        /// the ledger, the served student, the Wilson window.
        .target(
            name: "RetortDeployments",
            dependencies: [
                "RetortData", "RetortNumerics", "RetortStudents", "RetortEvals", "RetortSearch", "RetortTeacher",
            ]
        ),
        /// Usage reporting: `retort usage` and the spend views the dashboard and `retort ui` show.
        .target(name: "RetortUsage", dependencies: ["RetortData", "RetortTeacher", "RetortDeployments"]),
        /// The gateway HTTP server: routes, auth, student serving and shadow checks, reload, the dashboard route.
        .target(
            name: "RetortGateway",
            dependencies: [
                "RetortData", "RetortNumerics", "RetortTeacher", "RetortLabeling", "RetortDeployments", "RetortUsage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        /// A loopback fake provider (OpenAI and Anthropic wire formats, batches) for tests, checks and benchmarks.
        .target(
            name: "RetortGatewayTesting",
            dependencies: [
                "RetortTeacher",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        /// `retort gateway bench` and `retort deploy bench`: load against a gateway process and a fake provider.
        .target(
            name: "RetortBenchmarks",
            dependencies: [
                "RetortNumerics", "RetortTeacher", "RetortDeployments", "RetortGatewayTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Benchmarks/RetortBenchmarks"
        ),
        .target(
            name: "RetortUI",
            dependencies: [
                "RetortData", "RetortSearch", "RetortReports", "RetortHistory", "RetortTeacher", "RetortUsage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(
            name: "RetortExamples",
            dependencies: ["RetortNumerics", "RetortData", "RetortStudents", "Yams"]
        ),
        .executableTarget(
            name: "retort",
            dependencies: [
                "RetortNumerics", "RetortData", "RetortStudents", "RetortEvals", "RetortSearch", "RetortReports",
                "RetortExamples", "RetortHistory", "RetortTeacher", "RetortLabeling", "RetortDeployments",
                "RetortUsage", "RetortGateway", "RetortGatewayTesting", "RetortBenchmarks", "RetortUI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "RetortTestSupport",
            dependencies: [
                "RetortNumerics", "RetortData", "RetortStudents", .product(name: "Numerics", package: "swift-numerics"),
            ],
            path: "Tests/RetortTestSupport"
        ),
        .testTarget(name: "RetortNumericsTests", dependencies: ["RetortNumerics", "RetortTestSupport"]),
        .testTarget(name: "RetortDataTests", dependencies: ["RetortData", "RetortTestSupport"]),
        .testTarget(name: "RetortStudentsTests", dependencies: ["RetortStudents", "RetortTestSupport"]),
        .testTarget(name: "RetortEvalsTests", dependencies: ["RetortEvals", "RetortTestSupport"]),
        .testTarget(
            name: "RetortHistoryTests",
            dependencies: ["RetortHistory", "RetortSearch", "RetortReports", "RetortTestSupport"]),
        .testTarget(
            name: "RetortSearchTests",
            dependencies: ["RetortSearch", "RetortStudents", "RetortExamples", "RetortTestSupport"]
        ),
        .testTarget(
            name: "RetortGatewayTests",
            dependencies: [
                "RetortTeacher", "RetortLabeling", "RetortDeployments", "RetortUsage", "RetortGateway",
                "RetortGatewayTesting", "RetortTestSupport", "RetortStudents", "RetortNumerics", "RetortSearch",
                "RetortBenchmarks",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "RetortUITests",
            dependencies: [
                "RetortUI", "RetortSearch", "RetortReports", "RetortHistory", "RetortTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "RetortCLITests",
            dependencies: ["RetortTestSupport", "RetortData", "RetortTeacher"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
