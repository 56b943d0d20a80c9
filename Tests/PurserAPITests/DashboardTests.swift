import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

extension APISuites {
    @Suite("The dashboard")
    struct DashboardTests {
        /// A swarm whose name, failure message and stderr are markup a browser would run (routine
        /// names are letters, digits, '_' and '-' only).
        static let hostileJob = """
            team:
              name: api
              budget: { credits: 1000, workers: 32, memory: 64GiB }
            swarm:
              name: "<script>window.__xss=1</script>"
              reservation: { credits: 100, time: 10h, memory: 32GiB }
            routines:
              - { name: first, plugin: scripted, input: { spend: 3 }, estimate: { credits: 5, memory: 64MiB, time: 1m } }
              - name: plain
                plugin: scripted
                input: { fail: "<img src=x onerror=window.__xss=3>", stderr: "<b>tail</b>" }
                estimate: { credits: 2, memory: 64MiB, time: 1m }

            """

        @Test("in Chromium: login, the store's routines and budget figures, escaped names, a live update, no buttons for a reader")
        func browser() async throws {
            let (serve, url) = try await APIServe.onTCP()
            let home = serve.home
            let first = try await submit(Self.hostileJob, to: url)
            try await waitForState(first, on: url) { $0 == "done" }
            let second = try await submit(serve.job("long", count: 1, input: "{ sleepMs: 600000 }"), to: url)
            try await waitForState(second, on: url) { $0 == "running" }
            let team = try await runPurser(["team", "show", "api", "--json"], home: home)
            try #require(team.status == 0, "\(team.stderr)")
            let nodes = try JSONParser.parse(team.stdout).arrayValue ?? []

            let out = home + "/browser-operate"
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let screenshot = home + "/dashboard.png"
            let browse = try startBrowser(url: url, token: AccessTests.operateToken, out: out, extra: [
                "--swarm", first, "--watch", second, "--screenshot", screenshot, "--freeze",
            ])
            let loaded = await offPool { () -> Bool in
                while browse.isRunning && !FileManager.default.fileExists(atPath: out + "/loaded") { Thread.sleep(forTimeInterval: 0.1) }
                return FileManager.default.fileExists(atPath: out + "/loaded")
            }
            if loaded {
                let cancelled = try await HTTPAnswer.request("POST", "/v1/swarms/\(second)/cancel", on: url, token: AccessTests.operateToken)
                #expect(cancelled.status == 202, "\(cancelled.body)")
            }
            await offPool { browse.waitUntilExit() }
            let errors = (try? String(contentsOfFile: out + "/stderr", encoding: .utf8)) ?? ""
            try #require(browse.terminationStatus == 0, "browse.py: \(errors)")

            #expect(try read(out, "login.json")["cookieVisible"]?.stringValue == "", "the session cookie is HttpOnly")
            let swarm = try read(out, "swarm.json")
            #expect(swarm["xss"]?.stringValue == "undefined", "markup from the store ran")
            let routines = swarm["routines"]?.arrayValue ?? []
            #expect(routines.map { $0["name"]?.stringValue ?? "" } == ["first", "plain"], "\(routines)")
            let stored = try await HTTPAnswer.request("GET", "/v1/swarms/\(first)", on: url, token: AccessTests.readToken).json["routines"]
            #expect(routines.map { $0["verdict"]?.stringValue ?? "" } == stored?.arrayValue?.map { $0["verdict"]?.stringValue ?? "" }, "\(routines)")
            #expect(routines.first?["verdict"]?.stringValue == "ok" && routines.last?["verdict"]?.stringValue != "ok", "\(routines)")
            #expect(routines.last?["message"]?.stringValue?.contains("<img src=x onerror=window.__xss=3>") == true, "\(routines)")
            #expect(routines.last?["stderr"]?.stringValue == "<b>tail</b>", "the failure's stderr tail: \(routines)")
            let html = swarm["html"]?.stringValue ?? ""
            #expect(html.contains("&lt;b&gt;tail&lt;/b&gt;"), "\(html)")
            #expect(html.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;") && !html.contains("<script>window.__xss"), "\(html)")
            #expect(!html.contains("<img src=x"), "\(html)")

            let overview = try read(out, "overview.json")
            #expect(overview["workers"]?.numberValue?.int64 == 1, "the running routine is listed")
            #expect(overview["hosts"]?.arrayValue?.contains { $0.stringValue == "api" } == true)
            #expect((overview["buttons"]?.numberValue?.int64 ?? 0) >= 2, "an operator sees cancel and freeze")
            let budget = overview["budget"]?.arrayValue ?? []
            #expect(budget.count >= 3, "\(budget)")
            for row in budget {
                let node = try #require(nodes.first { $0["id"]?.numberValue?.int64 == row["id"]?.numberValue?.int64 }, "node \(row) not in team show")
                for figure in ["cap", "available", "reserved", "consumed", "returned"] {
                    let shown = Double(row[figure]?.stringValue ?? "")
                    let stored = node[figure]?["credits"]?.numberValue.flatMap { Double("\($0)") }
                    #expect(shown != nil && shown == stored, "node \(node["name"]?.stringValue ?? "") \(figure): page \(row[figure]?.stringValue ?? "") store \(node[figure]?.serialized() ?? "")")
                }
            }
            let final = try read(out, "final.json")
            #expect(final["mark"]?.stringValue == "kept", "the page was not reloaded")
            let row = final["swarms"]?.arrayValue?.first { $0["id"]?.stringValue == second }
            #expect(["cancelling", "completing", "done"].contains(row?["state"]?.stringValue ?? ""), "\(String(describing: row))")
            #expect(try read(out, "frozen.json")["mark"]?.stringValue == "kept", "frozen without a reload")
            let frozenTeam = try await HTTPAnswer.request("GET", "/v1/teams/api", on: url, token: AccessTests.readToken)
            #expect(frozenTeam.json["frozen"]?["reason"] == "from the dashboard" && frozenTeam.json["frozen"]?["by"] == "api:token 2", "\(frozenTeam.body)")
            let png = try Data(contentsOf: URL(fileURLWithPath: screenshot))
            #expect(png.starts(with: [0x89, 0x50, 0x4e, 0x47]), "a PNG")
            if let keep = ProcessInfo.processInfo.environment["PURSER_DASHBOARD_SCREENSHOT"] { try png.write(to: URL(fileURLWithPath: keep)) }

            let readerOut = home + "/browser-read"
            try FileManager.default.createDirectory(atPath: readerOut, withIntermediateDirectories: true)
            let reader = try startBrowser(url: url, token: AccessTests.readToken, out: readerOut, extra: ["--swarm", first])
            await offPool { reader.waitUntilExit() }
            let readerErrors = (try? String(contentsOfFile: readerOut + "/stderr", encoding: .utf8)) ?? ""
            try #require(reader.terminationStatus == 0, "browse.py: \(readerErrors)")
            #expect(try read(readerOut, "overview.json")["buttons"]?.numberValue?.int64 == 0, "a reader sees no buttons")
            #expect(!serve.output.contains(AccessTests.operateToken) && !serve.output.contains(AccessTests.readToken), "tokens in the log")
        }

        private func submit(_ job: String, to url: String) async throws -> String {
            let submitted = try await HTTPAnswer.request("POST", "/v1/swarms", on: url, token: AccessTests.operateToken, body: job)
            try #require(submitted.status == 201, "\(submitted.body)")
            return try #require(submitted.json["swarmId"]?.stringValue)
        }

        /// Asks every 100 ms until the swarm's state is one `done` accepts (a minute at most).
        private func waitForState(_ id: String, on url: String, _ done: (String) -> Bool) async throws {
            var state = ""
            for _ in 0..<600 {
                let shown = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)", on: url, token: AccessTests.readToken)
                state = shown.json["state"]?.stringValue ?? ""
                let routines = shown.json["routines"]?.arrayValue ?? []
                if done(state) && (state != "running" || routines.contains { $0["state"]?.stringValue == "running" }) { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("swarm \(id) stayed \(state)")
        }

        private func startBrowser(url: String, token: String, out: String, extra: [String]) throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", Fixtures.file("Tests/Fixtures/dashboard/browse.py"), "--base", url, "--token", token, "--out", out] + extra
            _ = FileManager.default.createFile(atPath: out + "/stderr", contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: out + "/stderr"))
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            return process
        }

        private func read(_ directory: String, _ name: String) throws -> JSONValue {
            try JSONParser.parse(String(contentsOfFile: directory + "/" + name, encoding: .utf8))
        }
    }
}
