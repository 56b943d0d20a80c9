import Foundation
import PurserRuntime
import PurserSandbox
import PurserTestSupport
import Testing

/// `--read-only DIR` lets an untrusted worker read a host directory. However the directory
/// is written, what must stay hidden in it stays hidden, and a path that leads somewhere
/// else than it says is refused.
@Suite("Shared directories", .timeLimit(.minutes(2)))
struct SharedPathTests {
    /// Outside /tmp, which the sandbox replaces wholesale.
    let outside = "/var/tmp/purser-shared-test-" + UUID().uuidString

    func project() throws -> String {
        let project = outside + "/proj"
        try FileManager.default.createDirectory(atPath: project + "/state/sub", withIntermediateDirectories: true)
        for directory in [outside, project, project + "/state", project + "/state/sub"] { chmod(directory, 0o755) }
        try "secret\n".write(toFile: project + "/secrets.yaml", atomically: true, encoding: .utf8)
        try "public\n".write(toFile: project + "/public.txt", atomically: true, encoding: .utf8)
        try "state\n".write(toFile: project + "/state/sub/ledger", atomically: true, encoding: .utf8)
        for file in ["/secrets.yaml", "/public.txt", "/state/sub/ledger"] { chmod(project + file, 0o644) }
        return project
    }

    func runtime(hiding project: String) throws -> Runtime {
        var runtime = try Runtime.withLedger(home: outside + "/home")
        runtime.hiddenPaths = [project + "/secrets.yaml", project + "/state"]
        return runtime
    }

    func read(_ paths: [String], sharing shared: String, runtime: Runtime) async throws -> RunReport {
        var request = Fixtures.hostile("walls", environment: ["HOSTILE_READ": paths.joined(separator: ":")])
        request.readOnlyPaths = [shared]
        return try await run(request, runtime: runtime)
    }

    @Test func hiddenFilesStayHiddenHoweverTheDirectoryIsWritten() async throws {
        let project = try project()
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let runtime = try runtime(hiding: project)
        let paths = [project + "/public.txt", project + "/secrets.yaml", project + "/state/sub/ledger"]
        let spellings = [
            project, outside + "//proj", outside + "/./proj", project + "/../proj", project + "/", project + "/.",
            outside + "/proj//", outside + "/../" + outside.split(separator: "/").last! + "/proj",
        ]
        for spelling in spellings {
            let report = try await read(paths, sharing: spelling, runtime: runtime)
            #expect(report.verdict == .ok, "\(spelling): \(report.verdict) \(report.message ?? "")")
            let results = report.output?["results"]
            #expect(results?[project + "/public.txt"] == "OK", "\(spelling): the shared file is readable")
            #expect(results?[project + "/secrets.yaml"] != "OK", "\(spelling): the secrets file was read")
            #expect(results?[project + "/state/sub/ledger"] != "OK", "\(spelling): a hidden directory was read")
        }
    }

    @Test func aSymlinkThatLeadsElsewhereIsRefusedNamingWhere() async throws {
        let project = try project()
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let runtime = try runtime(hiding: project)
        try FileManager.default.createSymbolicLink(atPath: outside + "/link", withDestinationPath: project)
        try FileManager.default.createDirectory(atPath: outside + "/real", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: outside + "/real/up", withDestinationPath: "..")
        for shared in [outside + "/link", outside + "/link/state/..", outside + "/real/up/proj"] {
            await #expect {
                _ = try await read([project + "/public.txt"], sharing: shared, runtime: runtime)
            } throws: { error in
                let message = (error as? RuntimeError)?.message ?? ""
                return message.contains(shared) && message.contains("symbolic link")
            }
        }
    }

    @Test func aDirectoryInsideAHiddenOneCannotBeShared() async throws {
        let project = try project()
        defer { try? FileManager.default.removeItem(atPath: outside) }
        let runtime = try runtime(hiding: project)
        for shared in [project + "/state", project + "/state/sub", project + "/state/../state/sub/"] {
            await #expect {
                _ = try await read([project + "/state/sub/ledger"], sharing: shared, runtime: runtime)
            } throws: { error in
                (error as? RuntimeError)?.message.contains("hidden") == true
            }
        }
    }
}
