import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

extension APISuites {
    @Suite("Swarms over the API")
    struct SwarmTests {
        @Test("submit → get → events → report, over the Unix socket; every answer as documented")
        func submitWatchReport() async throws {
            let serve = try await APIServe()
            let socket = "unix:" + serve.socket
            let submitted = try await HTTPAnswer.request("POST", "/v1/swarms?file=api.yaml", on: socket, body: serve.job("first"))
            #expect(submitted.status == 201, "\(submitted.body)")
            #expect(Contract.problems(submitted, "POST", "/v1/swarms").isEmpty, "\(Contract.problems(submitted, "POST", "/v1/swarms"))")
            let id = try #require(submitted.json["swarmId"]?.stringValue)

            let shown = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)", on: socket)
            #expect(shown.status == 200)
            #expect(shown.json["name"]?.stringValue == "first")
            #expect(Contract.problems(shown, "GET", "/v1/swarms/{id}").isEmpty, "\(Contract.problems(shown, "GET", "/v1/swarms/{id}"))")

            // The stream ends by itself at the swarm's end: curl returns.
            let stream = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)/events", on: socket)
            #expect(stream.status == 200)
            let frames = stream.body.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            // Each event: its id in the store, then its object.
            let events = frames.filter { $0.hasPrefix("id: ") }.compactMap { frame -> JSONValue? in
                let lines = frame.split(separator: "\n")
                guard lines.count == 2, Int64(lines[0].dropFirst(4)) != nil, lines[1].hasPrefix("data: ") else { return nil }
                return try? JSONParser.parse(String(lines[1].dropFirst(6)))
            }
            #expect(events.count == frames.filter { $0.hasPrefix("id: ") }.count, "\(stream.body)")
            // Asked again after an event, the stream takes up after it.
            let ids = frames.filter { $0.hasPrefix("id: ") }.compactMap { Int64($0.split(separator: "\n")[0].dropFirst(4)) }
            if ids.count >= 2 {
                let resumed = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)/events?after=\(ids[0])", on: socket)
                let again = resumed.body.components(separatedBy: "\n\n").filter { $0.hasPrefix("id: ") }.compactMap { Int64($0.split(separator: "\n")[0].dropFirst(4)) }
                #expect(again == Array(ids.dropFirst()), "\(resumed.body)")
            }
            #expect(events.contains { $0["event"]?.stringValue == "verdict" && $0["routine"]?.stringValue == "r0" })
            #expect(events.last?["event"]?.stringValue == "done")
            let end = try #require(frames.last, "no frames: \(stream.body)")
            #expect(end.hasPrefix("event: end\ndata: "), "\(end)")
            let report = try JSONParser.parse(String(end.dropFirst("event: end\ndata: ".count)))
            #expect(report["verdict"]?.stringValue == "ok", "\(report.serialized())")

            let done = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)", on: socket)
            #expect(done.json["state"]?.stringValue == "done")
            #expect(done.json["report"]?["verdict"]?.stringValue == "ok")
            #expect(Contract.problems(done, "GET", "/v1/swarms/{id}").isEmpty, "\(Contract.problems(done, "GET", "/v1/swarms/{id}"))")
            for path in ["/v1/swarms", "/v1/hosts", "/v1/teams/api", "/v1/plugins"] {
                let answer = try await HTTPAnswer.request("GET", path, on: socket)
                #expect(answer.status == 200, "\(path): \(answer.body)")
                #expect(Contract.problems(answer, "GET", path == "/v1/teams/api" ? "/v1/teams/{name}" : path).isEmpty, "\(answer.body)")
            }
            let missing = try await HTTPAnswer.request("GET", "/v1/swarms/s-none", on: socket)
            #expect(missing.status == 404 && missing.errorCode == "not_found")
            #expect(Contract.problems(missing, "GET", "/v1/swarms/{id}").isEmpty)
        }

        @Test("a bad job file: 422 naming its line and field, and nothing in the store")
        func badJob() async throws {
            let serve = try await APIServe()
            let socket = "unix:" + serve.socket
            // Line 6: a reservation with credits that are not a number.
            let job = serve.job("bad").replacingOccurrences(of: "reservation: { credits: 100,", with: "reservation: { credits: lots,")
            let refused = try await HTTPAnswer.request("POST", "/v1/swarms?file=bad.yaml", on: socket, body: job)
            #expect(refused.status == 422, "\(refused.body)")
            #expect(refused.errorCode == "invalid_job")
            #expect(refused.json["error"]?["line"]?.numberValue?.int64 == 6, "\(refused.body)")
            #expect(refused.json["error"]?["field"]?.stringValue == "swarm.reservation.credits", "\(refused.body)")
            #expect(refused.json["error"]?["message"]?.stringValue?.hasPrefix("bad.yaml:6:") == true, "\(refused.body)")
            #expect(Contract.problems(refused, "POST", "/v1/swarms").isEmpty)
            // A plugin that is not registered: refused by the same checks as purser submit.
            let unknown = try await HTTPAnswer.request(
                "POST", "/v1/swarms?file=u.yaml", on: socket, body: serve.job("u").replacingOccurrences(of: "plugin: scripted", with: "plugin: nosuch"))
            #expect(unknown.status == 422 && unknown.errorCode == "invalid_job", "\(unknown.body)")
            let list = try await HTTPAnswer.request("GET", "/v1/swarms", on: socket)
            #expect(list.json["swarms"]?.arrayValue?.isEmpty == true, "\(list.body)")
        }
    }
}
