import PurserGateway

/// One request to the egress proxy, parsed from bytes a worker chose: every part is checked
/// against an allow-list of characters and bounded, before it goes anywhere.
struct ProxyRequest: Sendable {
    var method: String
    /// CONNECT's `host:port`, or an absolute `http://` URL's parts.
    var host: String
    var port: Int
    /// Path and query, from `/`.
    var path: String
    var isConnect: Bool
    /// Names lower-cased, in order.
    var headers: [(name: String, value: String)]

    static let maxHead = 64 << 10
    static let maxBody = 8 << 20

    struct Refusal: Error {
        var status: Int
        var message: String
    }

    static func parse(head: [UInt8]) throws(Refusal) -> ProxyRequest {
        guard let text = String(validating: head, as: UTF8.self) else { throw Refusal(status: 400, message: "the request head is not UTF-8") }
        var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        guard !lines.isEmpty else { throw Refusal(status: 400, message: "no request line") }
        let parts = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0",
            !parts[0].isEmpty, parts[0].utf8.allSatisfy({ (0x41...0x5a).contains($0) })
        else { throw Refusal(status: 400, message: "a bad request line") }
        var request = ProxyRequest(method: parts[0], host: "", port: 0, path: "/", isConnect: parts[0] == "CONNECT", headers: [])
        try request.target(parts[1])
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw Refusal(status: 400, message: "a header line without ':'") }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
            guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte), value.utf8.allSatisfy(isValueByte) else {
                throw Refusal(status: 400, message: "a bad header")
            }
            request.headers.append((name, value))
        }
        return request
    }

    private mutating func target(_ target: String) throws(Refusal) {
        guard target.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { throw Refusal(status: 400, message: "a bad request target") }
        var authority: Substring
        if isConnect {
            authority = Substring(target)
        } else {
            guard target.lowercased().hasPrefix("http://") else {
                let why = target.lowercased().hasPrefix("https://") ? "https goes through CONNECT" : "only absolute http:// URLs"
                throw Refusal(status: 400, message: "the proxy takes \(why)")
            }
            let rest = target.dropFirst("http://".count)
            let end = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
            authority = rest[..<end]
            path = rest[end...].isEmpty ? "/" : (rest[end] == "?" ? "/" : "") + String(rest[end...])
        }
        guard !authority.contains("@") else { throw Refusal(status: 400, message: "credentials in a URL are refused") }
        // An IPv6 literal's colons ("[::1]", "[::1]:80") are not the port's.
        let colon = authority.hasSuffix("]") ? nil : authority.lastIndex(of: ":")
        let hostPart = colon.map { authority[..<$0] } ?? authority
        let portPart = colon.map { authority[authority.index(after: $0)...] }
        guard !hostPart.isEmpty, let port = portPart.map({ Int($0) }) ?? (isConnect ? 443 : 80), (1...65535).contains(port) else {
            throw Refusal(status: 400, message: "a bad host or port in \(String(target.prefix(200)))")
        }
        host = hostPart.lowercased()
        self.port = port
    }

    /// The host as a base URL holds it: an IPv6 literal without its brackets.
    var bareHost: String {
        host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    }

    /// The value of a header, the first if repeated.
    func header(_ name: String) -> String? { headers.first { $0.name == name }?.value }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        (0x30...0x39).contains(byte) || (0x41...0x5a).contains(byte) || (0x61...0x7a).contains(byte)
            || Array("!#$%&'*+-.^_`|~".utf8).contains(byte)
    }

    private static func isValueByte(_ byte: UInt8) -> Bool { byte == 0x09 || (byte >= 0x20 && byte != 0x7f) }

    /// The integration among `allowed` whose base URL holds this request's URL, with the
    /// path relative to it; nil when none does.
    func integration(among allowed: [Integration]) -> (Integration, String)? {
        for integration in allowed {
            let base = integration.base
            guard base.scheme == "http", base.host.lowercased() == bareHost, base.port == port else { continue }
            if base.path.isEmpty { return (integration, path) }
            guard path.hasPrefix(base.path) else { continue }
            let rest = path.dropFirst(base.path.count)
            if rest.isEmpty { return (integration, "/") }
            if rest.first == "/" { return (integration, String(rest)) }
            if rest.first == "?" { return (integration, "/" + rest) }
        }
        return nil
    }
}
