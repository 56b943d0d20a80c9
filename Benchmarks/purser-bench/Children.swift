import Foundation
import PurserHarness

/// The C programs the benchmarks run: the floors' children (floorchild, argchild), the
/// fastest real workers (cworker, gatewayworker) and the fast upstream (benchhttpd).
///
/// SwiftPM links even a C executable against the Swift runtime and libstdc++, and loading
/// those costs a child about a millisecond, on both sides of every ratio. So they are built
/// here, at every start, with `cc -O2` against libc alone, into `bench-children` beside
/// this executable; each is then checked with `ldd`, and the benchmark refuses to run with
/// a child that loads anything but libc, the dynamic loader and the vDSO.
enum Children {
    /// Each child and its C sources, relative to Benchmarks/.
    static let sources: [(name: String, files: [String])] = [
        ("floorchild", ["floorchild/main.c"]),
        ("argchild", ["argchild/main.c"]),
        ("cworker", ["cworker/main.c", "CWorkerScan/scan.c"]),
        ("gatewayworker", ["gatewayworker/main.c", "CWorkerScan/scan.c"]),
        ("benchhttpd", ["benchhttpd/main.c"]),
    ]

    /// Benchmarks/, found from this file's place in the repository.
    static let benchmarks = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().path

    /// Builds every child into `directory`, checks each with ldd, prints what ldd said, and
    /// returns `directory`.
    static func build(into directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let compiler = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        for child in sources {
            let path = directory + "/" + child.name
            try compile(child.files.map { benchmarks + "/" + $0 }, to: path, with: compiler)
            do {
                print("child \(child.name): \(compiler) -O2; ldd: " + (try libraries(path)).joined(separator: ", "))
            } catch {
                unlink(path)  // so that nobody runs it by hand either
                throw error
            }
        }
        return directory
    }

    /// Compiles to a temporary name, then renames, so that a benchmark starting meanwhile
    /// never runs half a file.
    private static func compile(_ files: [String], to path: String, with compiler: String) throws {
        let temporary = path + ".\(getpid())"
        let compilerPath = try resolve(compiler)
        let result = try runCommandBlocking(
            compilerPath, ["-O2", "-Wall", "-I", benchmarks + "/CWorkerScan/include", "-o", temporary] + files)
        guard result.status == 0 else {
            throw BenchError(code: "childBuild", "\(compiler) failed for \(path):\n\(result.stderr)")
        }
        guard rename(temporary, path) == 0 else {
            throw BenchError(code: "childBuild", "rename \(temporary): \(String(cString: strerror(errno)))")
        }
    }

    /// What `ldd` says `path` loads, one entry a library; throws if any is not allowed.
    static func libraries(_ path: String) throws -> [String] {
        let result = try runCommandBlocking(try resolve("ldd"), [path])
        let lines = result.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        // A static executable ("not a dynamic executable", status 1) loads nothing at all.
        if result.status != 0 || lines.contains(where: { $0.contains("statically linked") }) {
            guard (result.stdout + result.stderr).contains("not a dynamic executable")
                || lines.contains(where: { $0.contains("statically linked") })
            else { throw BenchError(code: "ldd", "ldd \(path) failed: \(result.stderr)") }
            return ["static"]
        }
        let names = lines.filter { !$0.isEmpty }.map { String($0.prefix { $0 != " " && $0 != "\t" }) }
        let foreign = names.filter { !allowed($0) }
        guard foreign.isEmpty else {
            throw BenchError(
                code: "childLinks",
                "\(path) loads \(foreign.joined(separator: ", ")) besides libc; a benchmark child must link libc only "
                    + "(its loading would weigh on both sides of every ratio):\n\(result.stdout)")
        }
        return names
    }

    /// The vDSO, libc and the dynamic loader: what every C program loads.
    static func allowed(_ library: String) -> Bool {
        let file = library.split(separator: "/").last.map(String.init) ?? library
        return file.hasPrefix("linux-vdso.so.") || file.hasPrefix("linux-gate.so.") || file.hasPrefix("libc.so.")
            || file.hasPrefix("ld-linux")
    }

    /// `name` as a path, looked up in PATH if it has no slash.
    private static func resolve(_ name: String) throws -> String {
        if name.contains("/") { return name }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
            return "\(directory)/\(name)"
        }
        throw BenchError(code: "notFound", "\(name) is not in PATH (the benchmark builds its C children with it)")
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
