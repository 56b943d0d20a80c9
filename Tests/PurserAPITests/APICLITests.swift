import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

extension APISuites {
    @Suite("submit, watch, cancel and hosts through a server")
    struct CLITests {
        /// A TCP serve, and a client token file holding its operator token.
        static func serve() async throws -> (serve: APIServe, server: [String]) {
            let (serve, url) = try await APIServe.onTCP()
            let mine = serve.home + "/my-token"
            try AccessTests.operateToken.write(toFile: mine, atomically: true, encoding: .utf8)
            chmod(mine, 0o600)
            return (serve, ["--server", url, "--server-token-file", mine])
        }

        @Test("through --server, submit --wait and watch print what they print on the store, and exit the same")
        func sameOutput() async throws {
            let (serve, server) = try await Self.serve()
            let job = serve.home + "/job.yaml"
            try serve.job("same", count: 3).write(toFile: job, atomically: true, encoding: .utf8)
            let waited = try await runPurser(["submit", job, "--wait"] + server, home: serve.home)
            #expect(waited.status == 0, "\(waited.stdout)\(waited.stderr)")
            let opened = try #require(waited.stdout.firstIndex(of: "("), "\(waited.stdout)")
            let id = String(waited.stdout[waited.stdout.index(after: opened)...].prefix { $0 != ")" })

            let ledger = ["--ledger", serve.home + "/purser.db"]
            let remote = try await runPurser(["watch", id] + server, home: serve.home)
            let local = try await runPurser(["watch", id] + ledger, home: serve.home)
            #expect(remote.status == 0 && local.status == 0, "\(remote.stderr)\(local.stderr)")
            #expect(remote.stdout == local.stdout && remote.stdout == waited.stdout, "\(remote.stdout)\n---\n\(local.stdout)")
            #expect(remote.stderr == local.stderr && remote.stderr.contains("[watch] r2: ok"), "\(remote.stderr)\n---\n\(local.stderr)")
            let remoteJSON = try await runPurser(["watch", id, "--json"] + server, home: serve.home)
            let localJSON = try await runPurser(["watch", id, "--json"] + ledger, home: serve.home)
            #expect(remoteJSON.stdout == localJSON.stdout && remoteJSON.stdout.contains("\"verdict\":\"ok\""), "\(remoteJSON.stdout)")

            let hosts = try await runPurser(["hosts", "--json"] + server, home: serve.home)
            let names = (try? JSONParser.parse(hosts.stdout))?.arrayValue?.compactMap { $0["name"]?.stringValue }
            #expect(names == ["api"], "\(hosts.stdout)\(hosts.stderr)")
            let table = try await runPurser(["hosts"] + server, home: serve.home)
            #expect(table.stdout.hasPrefix("host ") && table.stdout.contains("\napi "), "\(table.stdout)")
        }

        @Test("through --server, a bad job names its file and line and exits 2; cancel twice: once cancelling, then exit 2; no token: exit 2")
        func failures() async throws {
            let (serve, server) = try await Self.serve()
            let bad = serve.home + "/bad.yaml"
            try serve.job("bad").replacingOccurrences(of: "credits: 100,", with: "credits: lots,").write(toFile: bad, atomically: true, encoding: .utf8)
            let remote = try await runPurser(["submit", bad] + server, home: serve.home)
            let local = try await runPurser(["submit", bad, "--ledger", serve.home + "/purser.db"], home: serve.home)
            #expect(remote.status == 2 && remote.stderr == local.stderr && remote.stderr.contains("bad.yaml:6:"), "\(remote.stderr)\n---\n\(local.stderr)")

            let slow = serve.home + "/slow.yaml"
            try serve.job("slow", count: 1, input: "{ sleepMs: 60000 }").write(toFile: slow, atomically: true, encoding: .utf8)
            let submitted = try await runPurser(["submit", slow] + server, home: serve.home)
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(submitted.status == 0 && id.hasPrefix("s-"), "\(submitted.stderr)")
            let cancelled = try await runPurser(["cancel", id] + server, home: serve.home)
            #expect(cancelled.status == 0 && cancelled.stdout == "cancelling \(id)\n", "\(cancelled.stdout)\(cancelled.stderr)")
            let watched = try await runPurser(["watch", id] + server, home: serve.home)
            #expect(watched.status != 0 && watched.stdout.contains(": cancelled"), "\(watched.stdout)")
            let again = try await runPurser(["cancel", id] + server, home: serve.home)
            #expect(again.status == 2 && again.stderr.contains("no swarm \(id) that is still running or waiting"), "\(again.stderr)")

            let url = try #require(server.dropFirst().first)
            let bare = try await runPurser(["hosts", "--server", url], home: serve.home)
            #expect(bare.status == 2 && bare.stderr.contains("Authorization: Bearer"), "\(bare.stderr)")
            let nowhere = try await runPurser(["hosts", "--server", "http://127.0.0.1:1"], home: serve.home)
            #expect(nowhere.status == 1 && nowhere.stderr.contains("cannot reach the server at http://127.0.0.1:1"), "\(nowhere.stderr)")
            let both = try await runPurser(["hosts", "--server", url, "--ledger", serve.home + "/purser.db"], home: serve.home)
            #expect(both.status == 2, "\(both.stderr)")
        }

        @Test("submit --wait through --server: Ctrl-C cancels the swarm it started, and the report still comes")
        func interruptCancels() async throws {
            let (serve, server) = try await Self.serve()
            let slow = serve.home + "/slow.yaml"
            try serve.job("interrupted", count: 1, input: "{ sleepMs: 60000 }").write(toFile: slow, atomically: true, encoding: .utf8)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Fixtures.product("purser"))
            process.arguments = ["submit", slow, "--wait"] + server
            var environment = ProcessInfo.processInfo.environment
            environment["PURSER_HOME"] = serve.home
            process.environment = environment
            let (output, errors) = (serve.home + "/wait.out", serve.home + "/wait.err")
            for file in [output, errors] { _ = FileManager.default.createFile(atPath: file, contents: nil) }
            process.standardOutput = FileHandle(forWritingAtPath: output)
            process.standardError = FileHandle(forWritingAtPath: errors)
            try process.run()
            let claimed = await offPool { () -> Bool in
                let deadline = Date().addingTimeInterval(60)
                while Date() < deadline && process.isRunning {
                    if ((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").contains("claimed by") { return true }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                return false
            }
            try #require(claimed, "\((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "")")
            kill(process.processIdentifier, SIGINT)
            await offPool { process.waitUntilExit() }
            let said = (try? String(contentsOfFile: errors, encoding: .utf8)) ?? ""
            let report = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            #expect(process.terminationStatus == 18, "exit code of a cancelled swarm (ExitCodes): \(said)")
            #expect(said.contains("cancelling swarm s-") && report.contains("on team api: cancelled"), "\(said)\n\(report)")
        }

        @Test("a socket that accepts and never answers (a stopped serve) is passed over within seconds: the store answers")
        func aSilentSocket() async throws {
            let home = Fixtures.temporaryHome()
            let socket = home + "/purser.sock"
            // Bound and listening, never accepting: connects succeed through the backlog, nothing answers.
            let silent = Process()
            silent.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
            silent.arguments = ["-c", "import socket,time,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8); print('up', flush=True); time.sleep(120)", socket]
            let up = Pipe()
            silent.standardOutput = up
            try silent.run()
            defer { silent.terminate() }
            _ = await offPool { up.fileHandleForReading.availableData }
            let hosts = try await runPurser(["hosts", "--json"], home: home)
            #expect(hosts.status == 0 && hosts.stdout == "[]\n", "\(hosts.stdout)\(hosts.stderr)")
        }

        @Test("on the home's socket: a watch whose server dies goes on from the store, each event shown once; a dead serve's socket is passed over")
        func serverDiesMidWatch() async throws {
            let serve = try await APIServe()
            let job = serve.home + "/job.yaml"
            try serve.job("cut", count: 2, input: "{ sleepMs: 1500 }").write(toFile: job, atomically: true, encoding: .utf8)
            let submitted = try await runPurser(["submit", job], home: serve.home)
            let id = submitted.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            try #require(submitted.status == 0, "\(submitted.stderr)")
            async let watched = runPurser(["watch", id], home: serve.home)
            try await Task.sleep(for: .milliseconds(700))
            await serve.kill()
            let hosts = try await runPurser(["hosts"], home: serve.home)
            #expect(hosts.status == 0 && hosts.stdout.contains("\napi "), "a stale socket: \(hosts.stderr)")
            // Another host of the same store rescues the routines and ends the swarm.
            let rescuer = try await APIServe(extra: ["--no-socket"], home: serve.home, name: "rescuer")
            let result = try await watched
            #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
            #expect(result.stderr.contains("was lost; back in line") && result.stderr.contains("claimed by rescuer"), "\(result.stderr)")
            let fromStore = try await runPurser(["watch", id, "--ledger", serve.home + "/purser.db"], home: serve.home)
            #expect(result.stderr == fromStore.stderr && result.stdout == fromStore.stdout, "each event once:\n\(result.stderr)\n---\n\(fromStore.stderr)")
            _ = rescuer
        }
    }
}
