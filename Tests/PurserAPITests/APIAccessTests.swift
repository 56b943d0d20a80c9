import Foundation
import PurserTestSupport
import Testing

extension APISuites {
    @Suite("Who may use the API")
    struct AccessTests {
        static let readToken = "read-0123456789abcdef"
        static let operateToken = "operate-0123456789abcdef"

        @Test("on TCP: no token or a wrong one is 401, a read token may read but not submit (403), an operator token submits")
        func bearerTokens() async throws {
            let (serve, url) = try await APIServe.onTCP()
            let job = serve.job("tcp", count: 1, input: "{ sleepMs: 60000 }")
            let bare = try await HTTPAnswer.request("POST", "/v1/swarms", on: url, body: job)
            #expect(bare.status == 401 && bare.errorCode == "unauthorized", "\(bare.body)")
            let wrong = try await HTTPAnswer.request("POST", "/v1/swarms", on: url, token: Self.operateToken + "x", body: job)
            #expect(wrong.status == 401 && wrong.errorCode == "unauthorized", "\(wrong.body)")
            let unknownRoute = try await HTTPAnswer.request("GET", "/v1/nothing", on: url)
            #expect(unknownRoute.status == 401, "a route's existence is not told without a token")
            let reader = try await HTTPAnswer.request("POST", "/v1/swarms", on: url, token: Self.readToken, body: job)
            #expect(reader.status == 403 && reader.errorCode == "forbidden", "\(reader.body)")
            #expect(Contract.problems(reader, "POST", "/v1/swarms").isEmpty)
            let listed = try await HTTPAnswer.request("GET", "/v1/swarms", on: url, token: Self.readToken)
            #expect(listed.status == 200 && listed.json["swarms"]?.arrayValue?.isEmpty == true, "\(listed.body)")
            let operated = try await HTTPAnswer.request("POST", "/v1/swarms", on: url, token: Self.operateToken, body: job)
            #expect(operated.status == 201, "\(operated.body)")
            let id = try #require(operated.json["swarmId"]?.stringValue)
            let cancelByReader = try await HTTPAnswer.request("POST", "/v1/swarms/\(id)/cancel", on: url, token: Self.readToken)
            #expect(cancelByReader.status == 403)
            let cancelled = try await HTTPAnswer.request("POST", "/v1/swarms/\(id)/cancel", on: url, token: Self.operateToken)
            #expect(cancelled.status == 202, "\(cancelled.body)")
            #expect(Contract.problems(cancelled, "POST", "/v1/swarms/{id}/cancel").isEmpty, "\(cancelled.body)")
            let shown = try await HTTPAnswer.request("GET", "/v1/swarms/\(id)", on: url, token: Self.readToken)
            #expect(["cancelling", "completing", "done"].contains(shown.json["state"]?.stringValue ?? ""), "\(shown.body)")
            #expect(!serve.output.contains(Self.operateToken) && !serve.output.contains(Self.readToken), "tokens in the log")
        }

        @Test("the socket is mode 0600; a stale one is replaced, a file that is not a socket is refused")
        func socketFile() async throws {
            let serve = try await APIServe()
            var status = stat()
            try #require(lstat(serve.socket, &status) == 0)
            #expect(status.st_mode & S_IFMT == S_IFSOCK)
            #expect(status.st_mode & 0o777 == 0o600, "mode \(String(status.st_mode & 0o777, radix: 8))")

            // A live socket is not taken over: asked for by --socket, serve refuses to start.
            let second = try await runPurser(["serve", "--name", "second", "--socket", serve.socket], home: serve.home)
            #expect(second.status == 2 && second.stderr.contains("already listens"), "\(second.stderr)")

            // Killed, it leaves a stale socket: the next serve replaces it.
            await serve.kill()
            #expect(lstat(serve.socket, &status) == 0, "the killed serve's socket is there")
            let next = try await APIServe(home: serve.home)
            let answer = try await HTTPAnswer.request("GET", "/v1/hosts", on: "unix:" + next.socket)
            #expect(answer.status == 200, "\(answer.body)")

            let home = Fixtures.temporaryHome()
            let path = home + "/purser.sock"
            try "not a socket".write(toFile: path, atomically: true, encoding: .utf8)
            let refused = try await runPurser(["serve", "--name", "third"], home: home)
            #expect(refused.status == 2 && refused.stderr.contains("not a socket"), "\(refused.stderr)")
            #expect((try? String(contentsOfFile: path, encoding: .utf8)) == "not a socket")
        }

        @Test("a home too long for a Unix socket's path: serve runs, serves no socket, and says so")
        func longHome() async throws {
            let home = Fixtures.temporaryHome() + "/" + String(repeating: "h", count: 60)
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
            let serve = try await APIServe(home: home)
            #expect(serve.output.contains("is too long for a Unix socket"), "\(serve.output)")
            #expect(!FileManager.default.fileExists(atPath: serve.socket))
        }

        @Test("--listen without --token-file is refused before serve joins the fleet")
        func listenNeedsTokens() async throws {
            let home = Fixtures.temporaryHome()
            let refused = try await runPurser(["serve", "--name", "open", "--listen", "127.0.0.1:0"], home: home)
            #expect(refused.status == 2 && refused.stderr.contains("--listen needs --token-file"), "\(refused.stderr)")
            let tokens = home + "/loose"
            try "operate 0123456789abcdef0123\n".write(toFile: tokens, atomically: true, encoding: .utf8)
            chmod(tokens, 0o644)
            let loose = try await runPurser(["serve", "--name", "open", "--listen", "127.0.0.1:0", "--token-file", tokens], home: home)
            #expect(loose.status == 2 && loose.stderr.contains("may be read by others"), "\(loose.stderr)")
            #expect(!loose.stderr.contains("0123456789abcdef0123"))
        }
    }
}
