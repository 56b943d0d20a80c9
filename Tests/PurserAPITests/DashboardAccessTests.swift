import Foundation
import PurserTestSupport
import Testing

extension APISuites {
    @Suite("Who may use the dashboard")
    struct DashboardAccessTests {
        /// One exchange through curl with its headers: `headers` lower-cased names.
        struct Exchange {
            let status: Int
            let headers: [String: String]
            let body: String

            static func run(_ method: String, _ url: String, headers: [String] = [], form: String? = nil) async throws -> Exchange {
                var arguments = ["-sS", "-i", "-X", method]
                for header in headers { arguments += ["-H", header] }
                if let form { arguments += ["--data-raw", form] }
                let result = try await runCommand("/usr/bin/curl", arguments + [url])
                try #require(result.status == 0, "curl \(method) \(url): \(result.stderr)")
                let parts = result.stdout.components(separatedBy: "\r\n\r\n")
                let lines = parts[0].components(separatedBy: "\r\n")
                let status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
                var fields: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                return Exchange(status: status, headers: fields, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
            }
        }

        @Test("on TCP: pages send to /login, the form sets an HttpOnly SameSite=Strict cookie, cross-site POSTs are refused")
        func loginAndCookies() async throws {
            let (serve, url) = try await APIServe.onTCP()
            let origin = "Origin: " + url

            let bare = try await Exchange.run("GET", url + "/")
            #expect(bare.status == 303 && bare.headers["location"] == "/login", "\(bare)")
            let part = try await Exchange.run("GET", url + "/?part=live")
            #expect(part.status == 401, "the script's refresh gets the API's 401")
            let form = try await Exchange.run("GET", url + "/login")
            #expect(form.status == 200 && form.body.contains("name=\"token\""))
            #expect(form.headers["content-security-policy"]?.contains("script-src 'self'") == true, "\(form.headers)")
            #expect(form.headers["content-security-policy"]?.contains("unsafe") == false)

            let wrong = try await Exchange.run("POST", url + "/login", headers: [origin], form: "token=nope-0123456789abcdef")
            #expect(wrong.status == 401 && wrong.headers["set-cookie"] == nil)
            let elsewhere = try await Exchange.run(
                "POST", url + "/login", headers: ["Origin: http://evil.example"], form: "token=\(AccessTests.operateToken)")
            #expect(elsewhere.status == 403 && elsewhere.headers["set-cookie"] == nil, "\(elsewhere)")
            let login = try await Exchange.run("POST", url + "/login", headers: [origin], form: "token=\(AccessTests.operateToken)")
            #expect(login.status == 303 && login.headers["location"] == "/", "\(login)")
            let cookie = try #require(login.headers["set-cookie"], "\(login.headers)")
            #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "\(cookie)")
            #expect(!cookie.contains(AccessTests.operateToken), "the cookie holds a session, not the token")
            let session = "Cookie: " + (cookie.split(separator: ";").first.map(String.init) ?? "")

            let page = try await Exchange.run("GET", url + "/", headers: [session])
            #expect(page.status == 200 && page.body.contains("id=\"swarms\""), "\(page)")
            #expect(!page.body.contains(AccessTests.operateToken), "no token in the page")
            let submitted = try await HTTPAnswer.request(
                "POST", "/v1/swarms", on: url, token: AccessTests.operateToken, body: serve.job("cookie", count: 1, input: "{ sleepMs: 600000 }"))
            let id = try #require(submitted.json["swarmId"]?.stringValue, "\(submitted.body)")
            // The cookie goes with a cross-site request too: the server must refuse it.
            for headers in [[session], [session, "Origin: http://evil.example"], [session, origin, "Sec-Fetch-Site: cross-site"]] {
                let refused = try await Exchange.run("POST", url + "/v1/swarms/\(id)/cancel", headers: headers)
                #expect(refused.status == 403 && refused.body.contains("cross_site"), "\(headers): \(refused)")
            }
            let cancelled = try await Exchange.run("POST", url + "/v1/swarms/\(id)/cancel", headers: [session, origin, "Sec-Fetch-Site: same-origin"])
            #expect(cancelled.status == 202, "\(cancelled)")

            let logout = try await Exchange.run("POST", url + "/logout", headers: [session, origin])
            #expect(logout.status == 303 && logout.headers["set-cookie"]?.contains("Max-Age=0") == true, "\(logout)")
            let after = try await Exchange.run("GET", url + "/", headers: [session])
            #expect(after.status == 303, "a closed session opens nothing")
        }

        @Test("a read token's cookie reads but cannot cancel; on the socket the dashboard needs no login")
        func readerAndSocket() async throws {
            let (serve, url) = try await APIServe.onTCP()
            let origin = "Origin: " + url
            let submitted = try await HTTPAnswer.request(
                "POST", "/v1/swarms", on: url, token: AccessTests.operateToken, body: serve.job("<b>bold</b>", count: 1, input: "{ sleepMs: 600000 }"))
            let id = try #require(submitted.json["swarmId"]?.stringValue, "\(submitted.body)")

            let login = try await Exchange.run("POST", url + "/login", headers: [origin], form: "token=\(AccessTests.readToken)")
            let session = "Cookie: " + (login.headers["set-cookie"]?.split(separator: ";").first.map(String.init) ?? "")
            let page = try await Exchange.run("GET", url + "/swarms/\(id)", headers: [session])
            #expect(page.status == 200 && page.body.contains("&lt;b&gt;bold&lt;/b&gt;") && !page.body.contains("<b>bold"), "\(page.body)")
            #expect(!page.body.contains("data-post"), "a reader sees no buttons")
            let refused = try await Exchange.run("POST", url + "/v1/swarms/\(id)/cancel", headers: [session, origin])
            #expect(refused.status == 403 && refused.body.contains("forbidden"), "\(refused)")

            let socket = try await runCommand("/usr/bin/curl", ["-sS", "--unix-socket", serve.socket, "http://purser/swarms/\(id)"])
            #expect(socket.stdout.contains("data-post=\"/v1/swarms/\(id)/cancel\""), "the socket's user may operate: \(socket.stdout)")

            // The live part as Server-Sent Events: one `live` event at once, every line of it a `data:` line.
            let stream = try await runCommand("/usr/bin/curl", ["-sS", "-N", "--max-time", "3", "--unix-socket", serve.socket, "http://purser/swarms/\(id)?part=stream"])
            let frames = stream.stdout.components(separatedBy: "\n\n").filter { $0.hasPrefix("event: live\n") }
            #expect(!frames.isEmpty, "a frame at once: \(stream.stdout.prefix(500))")
            let lines = frames.first?.split(separator: "\n").dropFirst() ?? []
            #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("data: ") } && frames.first?.contains("&lt;b&gt;bold&lt;/b&gt;") == true, "\(frames)")
            let streamWithout = try await Exchange.run("GET", url + "/?part=stream")
            #expect(streamWithout.status == 401, "a stream without a login is the API's 401, not a redirect: \(streamWithout.status)")
        }
    }
}
