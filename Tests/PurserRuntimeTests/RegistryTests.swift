import Foundation
import PurserLedger
import PurserProtocol
import PurserRuntime
import PurserTestSupport
import Testing

/// `purser plugin`: pinned by SHA-256, checked by handshake, run as the very file pinned.
@Suite("Plugin registry", .serialized, .timeLimit(.minutes(2)))
struct RegistryTests {
    let home = Fixtures.temporaryHome()

    func purser(_ arguments: [String]) async throws -> CommandResult {
        try await runPurser(arguments, home: home + "/state", directory: home)
    }

    /// A copy of a built plugin in the test's folder, so it can be changed under the registry.
    func copy(_ product: String, to name: String) throws -> String {
        let path = home + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: Fixtures.product(product), toPath: path)
        return path
    }

    @Test func addingTheSameFileTwiceChangesNothing() async throws {
        let path = try copy("wordcount", to: "wc")
        let first = try JSONParser.parse(try await purser(["plugin", "add", path, "--json"]).stdout)
        let second = try JSONParser.parse(try await purser(["plugin", "add", path, "--json"]).stdout)
        #expect(first["result"] == "added")
        #expect(second["result"] == "unchanged")
        #expect(first["sha256"] == second["sha256"])
        #expect(first["name"] == "wordcount", "the name it gave in initialize")
        #expect(first["version"] == "1.0.0")
        let listed = try JSONParser.parse(try await purser(["plugin", "list", "--json"]).stdout)
        #expect(listed.arrayValue?.count == 1)
    }

    /// A trusted plugin may opt out of some layers and keep the rest; the run's report says
    /// which. An untrusted one may not, and an unknown layer is named with the line.
    @Test func aTrustedPluginOptsOutOfTheLayersItsManifestNames() async throws {
        let manifest = home + "/keep-network.yaml"
        try "trusted: true\noptOut: [mount-namespace, unprivileged-user]\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        #expect(try await purser(["plugin", "add", Fixtures.product("hostile"), "--name", "h", "--manifest", manifest]).status == 0)
        let run = try await purser(["exec", "h", "--env", "HOSTILE_MODE=walls", "--env", "HOSTILE_TCP=127.0.0.1:1", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try JSONParser.parse(run.stdout)
        #expect(report["sandbox"]?["level"] == "trusted")
        #expect(report["sandbox"]?["optedOut"] == ["mount-namespace", "unprivileged-user"])
        #expect(report["sandbox"]?["applied"]?.arrayValue?.contains("network") == true)
        #expect(report["output"]?["results"]?["tcp"] == "ENETUNREACH", "it kept its network namespace")
        #expect(report["output"]?["uid"] == 0, "it opted out of the sandbox user")

        for (text, message) in [
            ("optOut: [network]\n", "keep-network.yaml:1: optOut: only a trusted plugin"),
            ("trusted: true\noptOut: [memory-cgroup]\n", "keep-network.yaml:2: optOut: 'memory-cgroup' is not a layer"),
        ] {
            try text.write(toFile: manifest, atomically: true, encoding: .utf8)
            let refused = try await purser(["plugin", "add", Fixtures.product("hostile"), "--name", "h2", "--manifest", manifest])
            #expect(refused.status == 2)
            #expect(refused.stderr.contains(message), "\(refused.stderr)")
        }
    }

    @Test func aChangedBinaryIsRefusedUntilItIsAddedAgain() async throws {
        let path = try copy("wordcount", to: "tool")
        #expect(try await purser(["plugin", "add", path, "--name", "tool"]).status == 0)
        // Without its bytes in the store (StoredPluginTests has the store's part).
        _ = try SQLiteDriver(path: home + "/state/purser.db").single("DELETE FROM plugin_files", [])
        #expect(try await purser(["exec", "tool", "--input", #"{"text":"a b"}"#]).status == 0)
        // Replace the file's contents in place: same path, different bytes.
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.copyItem(atPath: Fixtures.product("echo"), toPath: path)
        let refused = try await purser(["exec", "tool", "--input", "1"])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("changed since it was pinned"), "\(refused.stderr)")
        #expect(try await purser(["plugin", "verify"]).status == 1)
        let job = home + "/job.yaml"
        try "team: { name: t, budget: { credits: 10 } }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: a, plugin: tool }\n"
            .write(toFile: job, atomically: true, encoding: .utf8)
        let run = try await purser(["run", job])
        #expect(run.status == 2)
        #expect(run.stderr.contains("job.yaml:4: routines.a.plugin: plugin tool:"), "\(run.stderr)")
        let readded = try JSONParser.parse(try await purser(["plugin", "add", path, "--name", "tool", "--json"]).stdout)
        #expect(readded["result"] == "repinned")
        #expect(try await purser(["exec", "tool", "--input", "1"]).status == 0)
        #expect(try await purser(["plugin", "verify"]).status == 0)
    }

    /// Within one supervisor a plugin's digest is remembered while its file is left alone
    /// (a swarm hashes it once); a change in place, same inode and size, is still caught.
    @Test func aChangeInPlaceIsCaughtAfterTheDigestWasRemembered() async throws {
        let path = try copy("wordcount", to: "kept")
        // Only a file left alone for a second is remembered.
        try await Task.sleep(for: .milliseconds(1_200))
        let runtime = try Runtime.withLedger(home: home + "/state")
        let (record, _) = try await PluginRegistry(runtime: runtime).add(path: path, name: "kept", manifest: nil)
        for _ in 0..<2 { close(try PluginRegistry.openPinned(record).fd) }
        let fd = open(path, O_RDWR)
        #expect(fd >= 0)
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, 4096) == 1)
        byte ^= 0xFF
        #expect(pwrite(fd, &byte, 1, 4096) == 1)
        close(fd)
        #expect(throws: RuntimeError.self) { close(try PluginRegistry.openPinned(record).fd) }
    }

    @Test func aPluginThatFailsTheHandshakeIsRefused() async throws {
        let result = try await purser(["plugin", "add", "/bin/true"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("failed the initialize handshake"), "\(result.stderr)")
        #expect(try JSONParser.parse(try await purser(["plugin", "list", "--json"]).stdout).arrayValue?.isEmpty == true)
    }

    /// A deterministic plugin's repeat costs no credits and no spawn; another input, or a
    /// plugin not declared deterministic, runs.
    @Test func deterministicResultsComeFromTheCache() async throws {
        let manifest = home + "/det.yaml"
        try "deterministic: true\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        #expect(try await purser(["plugin", "add", Fixtures.product("scripted"), "--name", "det", "--manifest", manifest]).status == 0)
        #expect(try await purser(["plugin", "add", Fixtures.product("scripted"), "--name", "plain"]).status == 0)
        let job = home + "/job.yaml"
        try """
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 50 } }
            routines:
              - { name: a, plugin: det, input: { spend: 0.5, output: { n: 1 } } }
              - { name: b, plugin: plain, input: { spend: 0.5, output: { n: 2 } } }
              - { name: c, plugin: det, input: { spend: 0.5, output: { n: "${a.output.n}", from: a } }, after: [a] }
            """.write(toFile: job, atomically: true, encoding: .utf8)
        let first = try JSONParser.parse(try await purser(["run", job, "--json"]).stdout)
        let second = try JSONParser.parse(try await purser(["run", job, "--json"]).stdout)
        func cached(_ report: JSONValue) -> [Bool] { (report["routines"]?.arrayValue ?? []).map { $0["cached"] == true } }
        #expect(cached(first) == [false, false, false])
        #expect(cached(second) == [true, false, true], "same file, same input: from the cache")
        #expect(second["routines"]?[2]?["output"] == ["n": 1, "from": "a"])
        #expect(second["tiers"]?[1]?["used"]?["credits"] == 0.5, "only the plain plugin spent")
        #expect(second["tiers"]?[1]?["nodes"] == 1, "nothing was reserved for the cached ones")
    }

    /// A routine made ready by a cache hit, with nothing else running, is served in the same
    /// look at the line: it used to be left for later and then denied as if it could never fit.
    @Test func aCacheHitsDependentRunsWhenNothingElseDoes() async throws {
        let manifest = home + "/det.yaml"
        try "deterministic: true\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        #expect(try await purser(["plugin", "add", Fixtures.product("scripted"), "--name", "det", "--manifest", manifest]).status == 0)
        let job = home + "/chain.yaml"
        try """
            team: { name: t, budget: { credits: 100 } }
            swarm: { name: s, reservation: { credits: 50 } }
            routines:
              - { name: a, plugin: det, input: { output: { n: 1 } } }
              - { name: b, plugin: \(Fixtures.product("scripted")), input: { output: "${a.output.n}" }, after: [a] }
            """.write(toFile: job, atomically: true, encoding: .utf8)
        #expect(try await purser(["run", job, "--json"]).status == 0)
        let second = try await purser(["run", job, "--json"])
        #expect(second.status == 0, "\(second.stdout)")
        let report = try JSONParser.parse(second.stdout)
        #expect(report["routines"]?[0]?["cached"] == true)
        #expect(report["routines"]?[1]?["verdict"] == "ok")
    }

    /// A manifest's default estimate applies when the job gives none, its maximum caps what
    /// is reserved, and the tools it needs must be given.
    @Test func manifestsShapeReservations() async throws {
        let manifest = home + "/m.yaml"
        try "reservation: { default: { credits: 2 }, max: { credits: 3, memory: 64MiB } }\ntools: [search]\n"
            .write(toFile: manifest, atomically: true, encoding: .utf8)
        #expect(try await purser(["plugin", "add", Fixtures.product("scripted"), "--name", "m", "--manifest", manifest]).status == 0)
        let job = home + "/job.yaml"
        func write(_ routines: String) throws {
            try "team: { name: t, budget: { credits: 100 } }\nswarm: { name: s, reservation: { credits: 50, tools: [search] } }\nroutines:\n\(routines)"
                .write(toFile: job, atomically: true, encoding: .utf8)
        }
        try write("  - { name: a, plugin: m, tools: [search] }\n  - { name: b, plugin: m, tools: [search], estimate: { credits: 10 } }\n")
        let run = try await purser(["run", job, "--events", home + "/events.ndjson", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let grants = try String(contentsOfFile: home + "/events.ndjson", encoding: .utf8).split(separator: "\n")
            .map { try JSONParser.parse(String($0)) }.filter { $0["event"] == "grant" }
        let credits = Dictionary(uniqueKeysWithValues: grants.map { ($0["routine"]?.stringValue ?? "", $0["credits"]) })
        #expect(credits["a"] == .number(JSONNumber(text: "2.4")!), "the default, ×1.2")
        #expect(credits["b"] == 3, "capped at the maximum")
        try write("  - { name: a, plugin: m }\n")
        let refused = try await purser(["run", job])
        #expect(refused.status == 2)
        #expect(refused.stderr.contains("routines.a.tools: plugin m needs search"), "\(refused.stderr)")
    }

    /// A plugin gets the variables its manifest names, with purser's values, and nothing else
    /// of purser's environment: through `exec` as in a swarm.
    @Test func theManifestsVariablesReachItsRuns() async throws {
        try "environment: [HOSTILE_MODE, PURSER_TEST_SECRET]\n".write(toFile: home + "/env.yaml", atomically: true, encoding: .utf8)
        let added = try await purser(["plugin", "add", Fixtures.product("hostile"), "--name", "h", "--manifest", home + "/env.yaml"])
        try #require(added.status == 0, "\(added.stderr)")
        let variables = ["HOSTILE_MODE": "env", "PURSER_TEST_SECRET": "s3cret", "PURSER_TEST_OTHER": "no"]
        let exec = try await runPurser(["exec", "h", "--json", "--env", "GIVEN=yes"], home: home + "/state", extra: variables)
        let output = try JSONParser.parse(exec.stdout)["output"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(output.contains("PURSER_TEST_SECRET=s3cret") && output.contains("GIVEN=yes"), "\(exec.stdout) \(exec.stderr)")
        #expect(!output.contains { $0.hasPrefix("PURSER_TEST_OTHER") })
        try "team: { name: t, budget: { credits: 10 } }\nswarm: { name: s, reservation: { credits: 2 } }\nroutines:\n  - { name: a, plugin: h }\n"
            .write(toFile: home + "/job.yaml", atomically: true, encoding: .utf8)
        let run = try await runPurser(["run", home + "/job.yaml", "--json"], home: home + "/state", extra: variables)
        #expect(run.stdout.contains("PURSER_TEST_SECRET=s3cret") && !run.stdout.contains("PURSER_TEST_OTHER"), "\(run.stdout) \(run.stderr)")
    }

    @Test func registeredPluginsRunByNameInJobs() async throws {
        let manifest = home + "/plugin.yaml"
        try "name: shouter\ntrusted: false\ndeterministic: true\n".write(toFile: manifest, atomically: true, encoding: .utf8)
        #expect(try await purser(["plugin", "add", Fixtures.file("Plugins/shout/shout.py"), "--manifest", manifest]).status == 0)
        let shown = try JSONParser.parse(try await purser(["plugin", "show", "shouter", "--json"]).stdout)
        #expect(shown["manifest"]?["deterministic"] == true)
        let job = home + "/job.yaml"
        try "team: { name: t, budget: { credits: 10 } }\nswarm: { name: s, reservation: { credits: 5 } }\nroutines:\n  - { name: a, plugin: shouter, input: { text: quiet } }\n"
            .write(toFile: job, atomically: true, encoding: .utf8)
        let run = try await purser(["run", job, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(try JSONParser.parse(run.stdout)["routines"]?[0]?["output"]?["text"] == "QUIET")
        #expect(try await purser(["plugin", "remove", "shouter"]).status == 0)
        #expect(try await purser(["plugin", "remove", "shouter"]).status == 2)
    }
}

extension JSONValue {
    fileprivate subscript(index: Int) -> JSONValue? {
        guard let items = arrayValue, items.indices.contains(index) else { return nil }
        return items[index]
    }
}
