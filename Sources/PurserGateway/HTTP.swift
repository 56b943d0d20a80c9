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

    /// Parses a raw header block into names (lower-cased) and values; repeated names are
    /// joined with ", ". Status lines and lines without a colon are skipped. Bytes, not
    /// characters: it runs on the HTTP engine's thread for every answer.
    static func parse(_ block: UnsafeRawBufferPointer) -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = []
        var start = 0
        while start < block.count {
            var end = start
            while end < block.count && block[end] != 0x0A && block[end] != 0x0D { end += 1 }
            if let header = header(UnsafeRawBufferPointer(rebasing: block[start..<end])) {
                if let index = headers.firstIndex(where: { $0.name == header.name }) {
                    headers[index].value += ", " + header.value
                } else {
                    headers.append(header)
                }
            }
            start = end + 1
        }
        return headers
    }

    private static func header(_ line: UnsafeRawBufferPointer) -> (name: String, value: String)? {
        guard !line.starts(with: "HTTP/".utf8), let colon = line.firstIndex(of: UInt8(ascii: ":")) else { return nil }
        var valueStart = colon + 1
        while valueStart < line.count && (line[valueStart] == 0x20 || line[valueStart] == 0x09) { valueStart += 1 }
        let name = String(decoding: line[..<colon].lazy.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self)
        return (name, String(decoding: line[valueStart...], as: UTF8.self))
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
