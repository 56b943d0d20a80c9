import CPurserCurl

/// A URL as libcurl itself reads it, so that what is checked is what is requested.
struct URLParts: Hashable {
    var scheme: String
    var host: String
    var port: Int
    var pathAndQuery: String

    init?(_ url: String) {
        var scheme = [CChar](repeating: 0, count: 16)
        var host = [CChar](repeating: 0, count: 256)
        var path = [CChar](repeating: 0, count: 8192)
        var port = 0
        let status = purser_url_split(url, &scheme, scheme.count, &host, host.count, &port, &path, path.count)
        guard status == 0 else { return nil }
        self.scheme = String(cString: scheme)
        self.host = String(cString: host)
        self.port = port
        self.pathAndQuery = String(cString: path)
        // libcurl keeps IPv6 literals bracketed.
        if self.host.hasPrefix("["), self.host.hasSuffix("]") { self.host = String(self.host.dropFirst().dropLast()) }
    }
}

enum HTTPHeaders {
    /// RFC 9110 token characters: what a header name may contain.
    static func isToken(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            default: "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
    }

    /// A header value a worker may send: no line breaks or NUL, so nothing can be smuggled.
    static func isSafeValue(_ value: String) -> Bool {
        value.utf8.count <= 8192 && !value.utf8.contains { $0 == 0x0D || $0 == 0x0A || $0 == 0 }
    }

    /// Headers a worker may not set: the connection and length are the gateway's, and
    /// credentials come only from the config.
    static let reserved: Set<String> = [
        "host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
        "expect", "authorization", "proxy-authorization", "proxy-connection", "cookie",
    ]

    /// Parses a raw header block into names (lower-cased) and values; repeated names are joined with ", ".
    static func parse(_ block: String) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        for line in block.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\r\n" || $0 == "\n" || $0 == "\r" }) {
            guard !line.hasPrefix("HTTP/"), let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...].drop(while: { $0 == " " || $0 == "\t" }))
            if let index = headers.firstIndex(where: { $0.name == name }) {
                headers[index].value += ", " + value
            } else {
                headers.append((name, value))
            }
        }
        return headers
    }
}

enum URLEncoding {
    /// Percent-encodes everything but RFC 3986 unreserved characters.
    static func component(_ text: String) -> String {
        var output = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                output.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                output += "%" + String(byte >> 4, radix: 16, uppercase: true) + String(byte & 15, radix: 16, uppercase: true)
            }
        }
        return output
    }

    /// Decodes %XX once; nil when an escape is malformed.
    static func decode(_ text: Substring) -> [UInt8]? {
        var output: [UInt8] = []
        var bytes = text.utf8.makeIterator()
        while let byte = bytes.next() {
            guard byte == UInt8(ascii: "%") else {
                output.append(byte)
                continue
            }
            guard let high = bytes.next().flatMap(hex), let low = bytes.next().flatMap(hex) else { return nil }
            output.append(high << 4 | low)
        }
        return output
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
