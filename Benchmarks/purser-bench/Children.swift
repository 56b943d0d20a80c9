import Foundation
import PurserHarness

/// The C programs the benchmarks run: the floors' children (floorchild, argchild), the
/// fastest real workers (cworker, gatewayworker) and the fast upstream (benchhttpd).
///
/// Built at every start with `cc -O2` against libc alone (`CChildren`), into
/// `bench-children` beside this executable; the benchmark refuses to run with a child that
/// loads anything but libc, the dynamic loader and the vDSO.
enum Children {
    /// Each child and its C sources, relative to Benchmarks/.
    static let sources: [(name: String, files: [String])] = [
        ("floorchild", ["floorchild/main.c"]),
        ("argchild", ["argchild/main.c"]),
        ("cworker", ["cworker/main.c", "CWorkerScan/scan.c"]),
        ("gatewayworker", ["gatewayworker/main.c", "CWorkerScan/scan.c"]),
        ("benchhttpd", ["benchhttpd/main.c"]),
    ]

    /// Builds every child into `directory`, checks each with ldd (`CChildren`), prints what
    /// ldd said, and returns `directory`.
    static func build(into directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let compiler = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        for child in sources {
            let loads = try CChildren.build(child.files, to: directory + "/" + child.name)
            print("child \(child.name): \(compiler) -O2; ldd: " + loads.joined(separator: ", "))
        }
        return directory
    }
}

/// Why a benchmark cannot run: a code to tell kinds apart, and what went wrong.
struct BenchError: Error, CustomStringConvertible {
    let code: String
    let description: String

    init(code: String, _ description: String) {
        self.code = code
        self.description = description
    }
}
