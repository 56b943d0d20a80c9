import Foundation
import PurserTestSupport
import PurserAPI
import Testing

extension APISuites {
    @Suite("The OpenAPI contract")
    struct ContractTests {
        @Test("every route the server registers is in protocol/openapi.yaml, and every documented route is served")
        func routesMatch() {
            let served = Set(APIRoute.allCases.map(\.rawValue))
            #expect(served.subtracting(Contract.routes).isEmpty, "served, not documented")
            #expect(Contract.routes.subtracting(served).isEmpty, "documented, not served")
        }
    }
}

extension APISuites.ContractTests {
    @Test("a client written against the document alone submits, follows, cancels, freezes and reads; jsonschema (Draft 2020-12) accepts every answer")
    func aClientOfTheDocument() async throws {
        let serve = try await APIServe()
        let job = serve.home + "/job.yaml"
        let slow = serve.home + "/slow.yaml"
        try serve.job("documented", count: 3).write(toFile: job, atomically: true, encoding: .utf8)
        try serve.job("slow", count: 1, input: "{ sleepMs: 60000 }").write(toFile: slow, atomically: true, encoding: .utf8)
        // Debian's python3, where python3-yaml and python3-jsonschema install (.ci/setup).
        let result = try await runCommand("/usr/bin/python3", [
            Fixtures.file("Tests/Fixtures/api-client/client.py"), "--spec", Fixtures.file("protocol/openapi.yaml"),
            "--socket", serve.socket, "--job", job, "--slow-job", slow,
        ])
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        #expect(result.stdout.contains("ok getSwarm 404") && result.stdout.contains("ok swarmEvents end"), "\(result.stdout)")
    }
}
