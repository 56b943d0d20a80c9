import HTTPTypes
import Hummingbird
import NIOCore

/// A TCP listener's door for browsers, before `BearerAuth`: it answers `/login` and
/// `/logout`, and lets a request that carries a live session cookie (and no bearer header)
/// through as if it carried the session's token, so that `BearerAuth` decides the access as
/// it does for a header. A cookie's request that changes something must come from the
/// dashboard's own origin. A page asked for without a login is sent to `/login`.
struct DashboardGate<Context: RequestContext>: RouterMiddleware {
    let tokens: Tokens
    let sessions: DashboardSessions

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch (request.method, request.uri.path) {
        case (.get, "/login"): return Self.loginPage(error: nil)
        case (.post, "/login"): return try await login(request)
        case (.post, "/logout"): return try logout(request)
        default: break
        }
        if request.method == .get, let asset = Dashboard.asset(request.uri.path) { return asset }
        if request.headers[.authorization] != nil { return try await next(request, context) }
        let session = DashboardSessions.id(inCookies: request.headers[.cookie])
        guard let session, let token = sessions.token(for: session) else {
            // A person opening a page is shown the login; a program (or the page's script) gets the API's 401.
            if request.method == .get, Dashboard.isPage(request.uri.path), request.uri.queryParameters["part"] == nil {
                return Response(status: .seeOther, headers: [.location: "/login", .cacheControl: "no-store"])
            }
            return try await next(request, context)
        }
        if request.method != .get && request.method != .head { try Self.checkSameOrigin(request) }
        var head = request.head
        head.headerFields[.authorization] = "Bearer \(token)"
        return try await next(Request(head: head, body: request.body), context)
    }

    /// A cookie goes with every request to this host, whoever's page made it: a request that
    /// changes something is taken only from the dashboard's own pages (Origin is this host,
    /// and the browser, if it says, calls it same-origin).
    static func checkSameOrigin(_ request: Request) throws(APIError) {
        let site = request.headers[HTTPField.Name("Sec-Fetch-Site")!]
        let origin = request.headers[.origin]
        let host = request.head.authority ?? ""
        guard site == nil || site == "same-origin", let origin, !host.isEmpty, origin == "http://\(host)" || origin == "https://\(host)" else {
            throw APIError(.forbidden, "cross_site", "a request made with the dashboard's cookie must come from the dashboard's own pages")
        }
    }

    private func login(_ request: Request) async throws -> Response {
        try Self.checkSameOrigin(request)
        var request = request
        let body = try await request.collectBody(upTo: 4096)
        let form = Self.formFields(String(decoding: body.readableBytesView, as: UTF8.self))
        guard let token = form["token"], tokens.access(for: token.utf8) != nil else {
            return Self.loginPage(error: "That token is not one of this server's.", status: .unauthorized)
        }
        let id = sessions.open(token: token)
        var headers = HTML.headers
        headers[.location] = "/"
        headers[.setCookie] = DashboardSessions.setCookie(id)
        return Response(status: .seeOther, headers: headers)
    }

    private func logout(_ request: Request) throws -> Response {
        try Self.checkSameOrigin(request)
        if let id = DashboardSessions.id(inCookies: request.headers[.cookie]) { sessions.close(id) }
        var headers = HTML.headers
        headers[.location] = "/login"
        headers[.setCookie] = DashboardSessions.clearCookie
        return Response(status: .seeOther, headers: headers)
    }

    static func loginPage(error: String?, status: HTTPResponse.Status = .ok) -> Response {
        let message = error.map { "<p class=\"error\">\(HTML.escape($0))</p>" } ?? ""
        let form = """
            <form class="login" method="post" action="/login"><h2>Log in to the dashboard</h2>\(message)
            <label for="token">API token (a read or operate line of serve's --token-file)</label>
            <input id="token" name="token" type="password" autocomplete="current-password" required>
            <button type="submit">Log in</button></form>
            """
        return HTML.response(HTML.page(title: "Log in", live: form, user: nil), status: status)
    }

    /// `application/x-www-form-urlencoded` fields.
    static func formFields(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = decode(parts[0]) else { continue }
            fields[key] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }

    private static func decode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var index = text.utf8.startIndex
        let utf8 = text.utf8
        while index < utf8.endIndex {
            let byte = utf8[index]
            if byte == UInt8(ascii: "%") {
                let high = utf8.index(after: index)
                guard high < utf8.endIndex, utf8.index(after: high) < utf8.endIndex,
                    let value = UInt8(String(decoding: [utf8[high], utf8[utf8.index(after: high)]], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
                index = utf8.index(high, offsetBy: 2)
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? 0x20 : byte)
                index = utf8.index(after: index)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }
}
