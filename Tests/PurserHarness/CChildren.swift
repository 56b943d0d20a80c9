import Foundation

/// C programs built with `cc -O2` against libc alone: the benchmarks' floors and fastest
/// workers, and the C worker the tests run.
///
/// SwiftPM links even a C executable against the Swift runtime and libstdc++, and loading
/// those costs a child about a millisecond. So they are built here, each checked with `ldd`,
/// and one that loads anything but libc, the dynamic loader and the vDSO is refused.
public enum CChildren {
    /// Benchmarks/, found from this file's place in the repository.
    public static let benchmarks = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Benchmarks").path

    /// Compiles `files` (relative to Benchmarks/) to `path`, checks it with ldd, and returns
    /// what ldd said it loads.
    @discardableResult
    public static func build(_ files: [String], to path: String) throws -> [String] {
        let compiler = ProcessInfo.processInfo.environment["CC"] ?? "cc"
        try compile(files.map { benchmarks + "/" + $0 }, to: path, with: compiler)
        do {
            return try libraries(path)
        } catch {
            unlink(path)  // so that nobody runs it by hand either
            throw error
        }
    }

    /// Compiles to a temporary name, then renames, so that nobody starting it meanwhile
    /// runs half a file.
    private static func compile(_ files: [String], to path: String, with compiler: String) throws {
        let temporary = path + ".\(getpid())"
        let result = try runCommandBlocking(
            try resolve(compiler), ["-O2", "-Wall", "-I", benchmarks + "/CWorkerScan/include", "-o", temporary] + files)
        guard result.status == 0 else {
            throw CChildError(code: "childBuild", "\(compiler) failed for \(path):\n\(result.stderr)")
        }
        guard rename(temporary, path) == 0 else {
            throw CChildError(code: "childBuild", "rename \(temporary): \(String(cString: strerror(errno)))")
        }
    }

    /// What `ldd` says `path` loads, one entry a library; throws if any is not allowed.
    public static func libraries(_ path: String) throws -> [String] {
        let result = try runCommandBlocking(try resolve("ldd"), [path])
        let lines = result.stdout.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        // A static executable ("not a dynamic executable", status 1) loads nothing at all.
        if result.status != 0 || lines.contains(where: { $0.contains("statically linked") }) {
            guard (result.stdout + result.stderr).contains("not a dynamic executable")
                || lines.contains(where: { $0.contains("statically linked") })
            else { throw CChildError(code: "ldd", "ldd \(path) failed: \(result.stderr)") }
            return ["static"]
        }
        let names = lines.filter { !$0.isEmpty }.map { String($0.prefix { $0 != " " && $0 != "\t" }) }
        let foreign = names.filter { !allowed($0) }
        guard foreign.isEmpty else {
            throw CChildError(
                code: "childLinks",
                "\(path) loads \(foreign.joined(separator: ", ")) besides libc; a C child must link libc only "
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
        throw CChildError(code: "notFound", "\(name) is not in PATH (C children are built with it)")
    }
}

/// Why a C child could not be built or was refused: a code to tell kinds apart, and what went wrong.
public struct CChildError: Error, CustomStringConvertible {
    public let code: String
    public let description: String

    public init(code: String, _ description: String) {
        self.code = code
        self.description = description
    }
}
