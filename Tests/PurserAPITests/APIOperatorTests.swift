import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

extension APISuites {
    @Suite("The emergency stop, ledger verify and the gateway's state over the API")
    struct OperatorTests {
        static let readToken = "read-0123456789abcdef"
        static let operateToken = "operate-0123456789abcdef"

        /// A serve on TCP whose operator token is named `alice` in the token file.
        static func serve() async throws -> (APIServe, String) {
            try await APIServe.onTCP(tokens: "read \(readToken)\noperate \(operateToken) alice\n")
        }

        /// Waits until the ledger knows the team (a host admitted its first swarm).
        static func waitForTeam(on target: String, token: String? = nil) async throws {
            for _ in 0..<600 {
                if try await HTTPAnswer.request("GET", "/v1/teams/api", on: target, token: token).status == 200 { return }
                try await Task.sleep(for: .milliseconds(100))
            }
            Issue.record("the team never appeared in the ledger")
        }

        @Test("freeze and thaw: the team shows who froze it and why, the audit trail names the token's holder; readers are refused")
        func freezeAndThaw() async throws {
            let (serve, url) = try await Self.serve()
            let submitted = try await HTTPAnswer.request(
                "POST", "/v1/swarms", on: url, token: Self.operateToken, body: serve.job("frozen", count: 1, input: "{ sleepMs: 60000 }"))
            try #require(submitted.status == 201, "\(submitted.body)")
            try await Self.waitForTeam(on: url, token: Self.readToken)

            let byReader = try await HTTPAnswer.request("POST", "/v1/teams/api/freeze", on: url, token: Self.readToken)
            #expect(byReader.status == 403, "\(byReader.body)")
            let unknown = try await HTTPAnswer.request("POST", "/v1/teams/nobody/freeze", on: url, token: Self.operateToken)
            #expect(unknown.status == 404 && unknown.errorCode == "not_found", "\(unknown.body)")
            let badBody = try await HTTPAnswer.request(
                "POST", "/v1/teams/api/freeze", on: url, token: Self.operateToken, body: #"{"reason": "x", "cancelRunning": "yes"}"#)
            #expect(badBody.status == 400 && badBody.json["error"]?["field"]?.stringValue == "cancelRunning", "\(badBody.body)")
            #expect(Contract.problems(badBody, "POST", "/v1/teams/{name}/freeze").isEmpty, "\(badBody.body)")
            let stillOpen = try await HTTPAnswer.request("GET", "/v1/teams/api", on: url, token: Self.readToken)
            #expect(stillOpen.json["frozen"] == .null, "a refused freeze froze nothing: \(stillOpen.body)")

            let frozen = try await HTTPAnswer.request(
                "POST", "/v1/teams/api/freeze", on: url, token: Self.operateToken, body: #"{"reason": "incident 42", "cancelRunning": true}"#)
            #expect(frozen.status == 200 && frozen.json["frozen"] == true && frozen.json["already"] == false, "\(frozen.body)")
            #expect(Contract.problems(frozen, "POST", "/v1/teams/{name}/freeze").isEmpty, "\(frozen.body)")
            let again = try await HTTPAnswer.request("POST", "/v1/teams/api/freeze", on: url, token: Self.operateToken)
            #expect(again.status == 200 && again.json["already"] == true, "\(again.body)")

            let team = try await HTTPAnswer.request("GET", "/v1/teams/api", on: url, token: Self.readToken)
            #expect(team.json["frozen"]?["by"]?.stringValue == "api:alice", "\(team.body)")
            #expect(team.json["frozen"]?["reason"]?.stringValue == "incident 42", "\(team.body)")
            #expect(Contract.problems(team, "GET", "/v1/teams/{name}").isEmpty, "\(team.body)")
            let shown = try await runPurser(["team", "show", "api"], home: serve.home)
            #expect(shown.stdout.contains("FROZEN"), "\(shown.stdout)")

            let thawed = try await HTTPAnswer.request("POST", "/v1/teams/api/thaw", on: url, token: Self.operateToken)
            #expect(thawed.status == 200 && thawed.json["frozen"] == false && thawed.json["already"] == false, "\(thawed.body)")
            #expect(Contract.problems(thawed, "POST", "/v1/teams/{name}/thaw").isEmpty, "\(thawed.body)")
            let open = try await HTTPAnswer.request("GET", "/v1/teams/api", on: url, token: Self.readToken)
            #expect(open.json["frozen"] == .null, "\(open.body)")

            let audit = try await runPurser(["ledger", "audit", "--team", "api", "--json"], home: serve.home)
            let trail = audit.stdout.split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
                .filter { ["freeze", "thaw"].contains($0["kind"]?.stringValue ?? "") }
            #expect(trail.map { $0["kind"]?.stringValue } == ["freeze", "thaw"], "\(audit.stdout)")
            #expect(trail.first?["detail"]?.stringValue == "by api:alice: incident 42", "\(audit.stdout)")
            #expect(trail.last?["detail"]?.stringValue == "by api:alice", "\(audit.stdout)")
            #expect(!serve.output.contains(Self.operateToken), "a token in the log")
        }

        @Test("on the socket the audit trail names the socket; ledger verify and the integrations answer as their CLI commands")
        func verifyAndIntegrations() async throws {
            let serve = try await APIServe()
            let socket = "unix:" + serve.socket
            let submitted = try await HTTPAnswer.request("POST", "/v1/swarms", on: socket, body: serve.job("verified", count: 2))
            try #require(submitted.status == 201, "\(submitted.body)")
            try await Self.waitForTeam(on: socket)
            let frozen = try await HTTPAnswer.request("POST", "/v1/teams/api/freeze", on: socket)
            #expect(frozen.status == 200, "\(frozen.body)")
            let team = try await HTTPAnswer.request("GET", "/v1/teams/api", on: socket)
            #expect(team.json["frozen"]?["by"]?.stringValue == "api:socket (uid \(getuid()))", "\(team.body)")
            #expect(team.json["frozen"]?["reason"]?.stringValue == "frozen through the API", "\(team.body)")

            let verified = try await HTTPAnswer.request("GET", "/v1/ledger/verify", on: socket)
            #expect(verified.status == 200 && verified.json["ok"] == true, "\(verified.body)")
            #expect(Contract.problems(verified, "GET", "/v1/ledger/verify").isEmpty, "\(verified.body)")
            let cli = try await runPurser(["ledger", "verify"], home: serve.home)
            #expect(cli.status == 0, "\(cli.stdout)")

            let integrations = try await HTTPAnswer.request("GET", "/v1/integrations", on: socket)
            #expect(integrations.status == 200 && integrations.json["integrations"]?.arrayValue?.isEmpty == true, "\(integrations.body)")
            #expect(Contract.problems(integrations, "GET", "/v1/integrations").isEmpty, "\(integrations.body)")
        }

        @Test("a wrong method on a route is 405 with the API's error shape, an unknown path 404")
        func wrongMethod() async throws {
            let serve = try await APIServe()
            let socket = "unix:" + serve.socket
            let deleted = try await HTTPAnswer.request("DELETE", "/v1/swarms", on: socket)
            #expect(deleted.status == 405 && deleted.errorCode == "method_not_allowed", "\(deleted.status) \(deleted.body)")
            let getFreeze = try await HTTPAnswer.request("GET", "/v1/teams/api/freeze", on: socket)
            #expect(getFreeze.status == 405 && getFreeze.errorCode == "method_not_allowed", "\(getFreeze.body)")
            let nowhere = try await HTTPAnswer.request("GET", "/v1/nowhere", on: socket)
            #expect(nowhere.status == 404 && nowhere.errorCode == "not_found", "\(nowhere.body)")
        }
    }
}
