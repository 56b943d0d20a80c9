// swift-tools-version:6.1
import PackageDescription

// One settings list for every Swift target, as swift-log does.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]
let cSettings: [CSetting] = [.define("_GNU_SOURCE")]
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let metrics: Target.Dependency = .product(name: "CoreMetrics", package: "swift-metrics")

let package = Package(
    name: "Purser",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "purser", targets: ["purser"]),
        .executable(name: "purser-sandbox", targets: ["purser-sandbox"]),
        .executable(name: "purser-watchdog", targets: ["purser-watchdog"]),
        .executable(name: "purser-mcp", targets: ["purser-mcp"]),
        .library(name: "PurserPluginKit", targets: ["PurserPluginKit"]),
        .library(name: "PurserRuntime", targets: ["PurserRuntime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        // The HTTP API of purser serve. No default traits: swift-configuration and full Foundation are not needed.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        // The CLI's client of the API (NIOHTTP1 on a Unix socket or TCP); Hummingbird's own dependency.
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        // purser serve's /metrics: the modules count through swift-metrics' facade, PurserAPI renders Prometheus text.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Wire types and framing; depends on nothing, not even Foundation.
        .target(name: "PurserProtocol", swiftSettings: swiftSettings),
        // Containers the caches share (an O(1) least-recently-used map).
        .target(name: "PurserCollections", swiftSettings: swiftSettings),
        // Syscalls Swift cannot make itself (clone-based spawn, variadic prctl).
        .target(name: "CPurserSys", cSettings: cSettings),
        // SHA-256 through libcrypto (OpenSSL), which libcurl already loads.
        .target(name: "CPurserCrypto", cSettings: cSettings, linkerSettings: [.linkedLibrary("crypto")]),
        .target(name: "PurserSandbox", dependencies: ["CPurserSys", "CPurserCrypto", logging], swiftSettings: swiftSettings),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // Catches a SIGBUS in SQLite's shared mapping of the WAL index (a store file made
        // immutable or truncated under it), so that the store fails cleanly instead.
        .target(name: "CPurserStore", cSettings: cSettings),
        .target(name: "PurserLedger", dependencies: ["CSQLite", "CLibPQ", "CPurserStore", logging, metrics], swiftSettings: swiftSettings),
        // Config files (YAML or JSON) read with the line of every field, for errors that name it.
        .target(
            name: "PurserConfig", dependencies: ["PurserProtocol", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings),
        // libcurl's multi interface on a thread of its own, behind typed C functions.
        .target(
            name: "CPurserCurl", cSettings: cSettings,
            linkerSettings: [.linkedLibrary("curl"), .linkedLibrary("pthread")]),
        .target(
            name: "PurserGateway", dependencies: ["PurserProtocol", "PurserConfig", "PurserCollections", "CPurserCurl", logging, metrics],
            swiftSettings: swiftSettings),
        .target(
            name: "PurserRuntime",
            dependencies: [
                "PurserProtocol", "PurserMCP", "PurserSandbox", "PurserLedger", "PurserGateway", "PurserConfig", "PurserCollections",
                .product(name: "HeapModule", package: "swift-collections"), logging,
            ],
            swiftSettings: swiftSettings),
        // The fleet: hosts that claim routines from a shared queue, heartbeat, rescue and drain.
        .target(
            name: "PurserFleet", dependencies: ["PurserRuntime", "PurserLedger", "PurserProtocol", "PurserSandbox", logging, metrics],
            swiftSettings: swiftSettings),
        // purser serve's HTTP API (docs/api.md, protocol/openapi.yaml): the CLI's store APIs over JSON.
        .target(
            name: "PurserAPI",
            dependencies: [
                "PurserFleet", "PurserRuntime", "PurserLedger", "PurserGateway", "PurserProtocol", logging,
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"), metrics,
            ],
            swiftSettings: swiftSettings),
        // purser's log lines (logfmt, JSON), every value escaped as worker text is.
        .target(name: "PurserLog", dependencies: ["PurserProtocol", logging], swiftSettings: swiftSettings),
        // The terminal view of purser run and watch: frames as a pure function of a swarm's progress.
        .target(name: "PurserTerminal", dependencies: ["PurserProtocol"], swiftSettings: swiftSettings),
        .executableTarget(
            name: "purser",
            dependencies: [
                "PurserRuntime", "PurserFleet", "PurserLedger", "PurserProtocol", "PurserConfig", "PurserGateway", "PurserSandbox",
                "PurserLog", "PurserAPI", "PurserTerminal", "PurserConformance", logging, .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings),
        // What a supervisor that is not root runs between itself and an untrusted worker.
        .executableTarget(
            name: "purser-sandbox", dependencies: ["CPurserSys"], path: "Sources/purser-sandbox", cSettings: cSettings),
        // Kills a supervisor's runs the moment it dies (see its header).
        .executableTarget(
            name: "purser-watchdog", dependencies: ["CPurserSys"], path: "Sources/purser-watchdog", cSettings: cSettings),
        .target(name: "PurserPluginKit", dependencies: ["PurserProtocol"], swiftSettings: swiftSettings),
        // purser conformance: a worker checked against protocol/SPEC.md, in the sandbox; or an MCP stdio server against MCP.
        .target(name: "PurserConformance", dependencies: ["PurserProtocol", "PurserRuntime", "PurserSandbox", "PurserMCP"], swiftSettings: swiftSettings),
        // MCP stdio servers as Purser workers: the bridge's state machine, and the executable
        // that runs it inside a run's sandbox beside the server (docs/mcp.md).
        .target(name: "PurserMCP", dependencies: ["PurserProtocol"], swiftSettings: swiftSettings),
        .executableTarget(name: "purser-mcp", dependencies: ["PurserMCP", "PurserProtocol"], path: "Sources/purser-mcp", swiftSettings: swiftSettings),

        // Example plugins.
        .executableTarget(
            name: "echo", dependencies: ["PurserPluginKit"], path: "Plugins/echo",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "wordcount", dependencies: ["PurserPluginKit"], path: "Plugins/wordcount",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "fetch", dependencies: ["PurserPluginKit"], path: "Plugins/fetch",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "delegate", dependencies: ["PurserPluginKit"], path: "Plugins/delegate",
            swiftSettings: swiftSettings),

        // Benchmarks. The C children purser-bench runs (cworker, gatewayworker, floorchild,
        // argchild, benchhttpd), and the cworker the tests run, are built with cc against
        // libc alone (Tests/PurserHarness/CChildren.swift), never by SwiftPM, which would link
        // them against the Swift runtime. The hostile test plugin shares their scanner.
        .target(name: "CWorkerScan", path: "Benchmarks/CWorkerScan", cSettings: cSettings),
        .target(
            name: "CPurserBenchFloor", dependencies: ["CSQLite"], path: "Benchmarks/CPurserBenchFloor",
            cSettings: cSettings, linkerSettings: [.linkedLibrary("curl")]),
        .executableTarget(
            name: "purser-bench",
            dependencies: [
                "PurserRuntime", "PurserSandbox", "PurserLedger", "PurserGateway", "PurserConfig", "PurserHarness",
                "CPurserBenchFloor",
            ],
            path: "Benchmarks/purser-bench",
            swiftSettings: swiftSettings),

        // Tests.
        .executableTarget(
            name: "hostile", dependencies: ["CWorkerScan"], path: "Tests/Fixtures/hostile",
            cSettings: cSettings),
        .executableTarget(
            name: "noisy", dependencies: ["PurserPluginKit"], path: "Tests/Fixtures/noisy",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "scripted", dependencies: ["PurserPluginKit"], path: "Tests/Fixtures/scripted",
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "ledger-stress", dependencies: ["PurserLedger", "PurserHarness"], path: "Tests/Fixtures/ledger-stress",
            swiftSettings: swiftSettings),
        // What the tests and the benchmarks both need: the local servers they start
        // (PostgreSQL, the HTTP upstream), commands run to their end, work kept off the pool.
        .target(name: "PurserHarness", path: "Tests/PurserHarness", swiftSettings: swiftSettings),
        .target(
            name: "PurserTestSupport",
            dependencies: ["PurserRuntime", "PurserProtocol", "PurserMCP", "PurserHarness"],
            path: "Tests/PurserTestSupport",
            swiftSettings: swiftSettings),
        .testTarget(name: "PurserCollectionsTests", dependencies: ["PurserCollections", "PurserHarness"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserProtocolTests",
            dependencies: ["PurserProtocol", "PurserTestSupport", "echo"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserConfigTests",
            dependencies: ["PurserConfig", "PurserTestSupport", "purser"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserLedgerTests",
            dependencies: ["PurserLedger", "PurserTestSupport", "ledger-stress"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserGatewayTests",
            dependencies: [
                "PurserGateway", "PurserConfig", "PurserRuntime", "PurserLedger", "PurserProtocol", "PurserTestSupport",
                "hostile", "fetch", "purser", logging,
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserFleetTests", dependencies: ["PurserLedger", "PurserTestSupport", "purser", "scripted"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserAPITests",
            dependencies: ["PurserAPI", "PurserConfig", "PurserProtocol", "PurserTestSupport", "purser", "scripted"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserMCPTests", dependencies: ["PurserMCP", "PurserProtocol", "PurserTestSupport", "purser-mcp", "purser", "scripted", "hostile"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserTerminalTests", dependencies: ["PurserTerminal", "PurserProtocol", "PurserRuntime", "PurserTestSupport", "purser", "scripted"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserConformanceTests",
            dependencies: [
                "PurserConformance", "PurserRuntime", "PurserProtocol", "PurserSandbox", "PurserTestSupport", "purser", "hostile", "echo",
                "wordcount", "fetch", "delegate", "noisy",
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserSandboxTests", dependencies: ["PurserSandbox", "PurserTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserLogTests", dependencies: ["PurserLog", "PurserProtocol", "PurserTestSupport", "purser", logging],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "PurserRuntimeTests",
            dependencies: [
                "PurserRuntime", "PurserSandbox", "PurserLedger", "PurserProtocol", "PurserTestSupport", "PurserConfig",
                "hostile", "echo", "wordcount", "noisy", "purser", "scripted", "fetch", "purser-watchdog",
            ],
            swiftSettings: swiftSettings),
    ]
)
