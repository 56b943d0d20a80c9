import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

extension APISuites {
    /// A `purser run` on the serve's home waits for approvals, and the API decides them.
    @Suite("Approvals over the API")
    struct ApprovalTests {
        @Test("list, approve and deny; a decided or unknown id answered as documented")
        func decide() async throws {
            let serve = try await APIServe()
            let socket = "unix:" + serve.socket
            try """
                team: { name: g, budget: { credits: 100 } }
                swarm: { name: gated, reservation: { credits: 10, tools: [net] }, approval: [net] }
                routines:
                  - { name: a, plugin: scripted, tools: [net] }
                  - { name: b, plugin: scripted, tools: [net] }
                """.write(toFile: serve.home + "/gated.yaml", atomically: true, encoding: .utf8)
            let run = Process()
            run.executableURL = URL(fileURLWithPath: Fixtures.product("purser"))
            run.arguments = ["run", serve.home + "/gated.yaml", "--json"]
            var environment = ProcessInfo.processInfo.environment
            environment["PURSER_HOME"] = serve.home
            environment.removeValue(forKey: "PURSER_LEDGER")
            run.environment = environment
            let output = Pipe()
            (run.standardOutput, run.standardError) = (output, FileHandle.nullDevice)
            try run.run()
            let reading = Task.detached { output.fileHandleForReading.readDataToEndOfFile() }

            var listed = try await HTTPAnswer.request("GET", "/v1/approvals", on: socket)
            while (listed.json["approvals"]?.arrayValue?.count ?? 0) < 2 {
                try #require(run.isRunning, "purser run ended without asking")
                try await Task.sleep(for: .milliseconds(50))
                listed = try await HTTPAnswer.request("GET", "/v1/approvals", on: socket)
            }
            #expect(Contract.problems(listed, "GET", "/v1/approvals").isEmpty, "\(Contract.problems(listed, "GET", "/v1/approvals"))")
            var ids: [String: String] = [:]
            for approval in listed.json["approvals"]?.arrayValue ?? [] {
                ids[approval["routine"]?.stringValue ?? ""] = approval["id"]?.stringValue
            }
            let (a, b) = (try #require(ids["a"]), try #require(ids["b"]))

            // The dashboard lists them, with the buttons that decide (the socket is an operator's).
            let page = try await HTTPAnswer.request("GET", "/?part=live", on: socket)
            for id in [a, b] {
                #expect(page.body.contains("data-approval=\"\(id)\"") && page.body.contains("data-post=\"/v1/approvals/\(id)/approve\""), "\(page.body)")
                #expect(page.body.contains("class=\"deny\" data-post=\"/v1/approvals/\(id)/deny\""), "\(page.body)")
            }

            let approved = try await HTTPAnswer.request("POST", "/v1/approvals/\(a)/approve", on: socket, body: #"{"reason": "fine"}"#)
            #expect(approved.status == 200, "\(approved.body)")
            #expect(approved.json["state"] == "approved" && approved.json["decidedBy"] == .string("api:socket (uid \(getuid()))"))
            #expect(Contract.problems(approved, "POST", "/v1/approvals/{id}/approve").isEmpty)
            let again = try await HTTPAnswer.request("POST", "/v1/approvals/\(a)/approve", on: socket)
            #expect(again.status == 409 && again.errorCode == "decided", "\(again.body)")
            #expect(Contract.problems(again, "POST", "/v1/approvals/{id}/approve").isEmpty)
            let noReason = try await HTTPAnswer.request("POST", "/v1/approvals/\(b)/deny", on: socket, body: "{}")
            #expect(noReason.status == 400 && noReason.errorCode == "bad_parameter", "\(noReason.body)")
            let denied = try await HTTPAnswer.request("POST", "/v1/approvals/\(b)/deny", on: socket, body: #"{"reason": "no"}"#)
            #expect(denied.status == 200 && denied.json["state"] == "denied", "\(denied.body)")
            #expect(Contract.problems(denied, "POST", "/v1/approvals/{id}/deny").isEmpty)
            let unknown = try await HTTPAnswer.request("POST", "/v1/approvals/ap-nope/deny", on: socket, body: #"{"reason": "no"}"#)
            #expect(unknown.status == 404 && unknown.errorCode == "not_found", "\(unknown.body)")
            #expect(Contract.problems(unknown, "POST", "/v1/approvals/{id}/deny").isEmpty)

            let data = await reading.value
            await offPool { run.waitUntilExit() }
            #expect(run.terminationStatus == 21, "b was denied")
            let report = try JSONParser.parse(String(decoding: data, as: UTF8.self))
            let verdicts = Dictionary(uniqueKeysWithValues: (report["routines"]?.arrayValue ?? []).map {
                ($0["name"]?.stringValue ?? "", $0["verdict"]?.stringValue ?? "")
            })
            #expect(verdicts == ["a": "ok", "b": "denied"], "\(report.serialized())")
        }
    }
}
