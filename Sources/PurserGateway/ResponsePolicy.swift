/// What of an upstream's answer reaches a worker: only bytes the credential scrubber can
/// read as the worker will. The engine hands over bodies with every content and transfer
/// coding undone, so the headers that describe a coding go; an answer the engine could not
/// decode, or in a charset the scrubber cannot read, does not go at all.
enum ResponsePolicy {
    /// libcurl's CURLE_BAD_CONTENT_ENCODING: a coding it cannot undo, or a body that is not
    /// what its coding says.
    static let undecodable: Int32 = 61

    /// Why `response` may not be passed on, or nil.
    static func refusal(_ response: UpstreamResponse) -> String? {
        if response.curlCode == undecodable {
            let coding = response.header("content-encoding") ?? response.header("transfer-encoding") ?? "?"
            return "the upstream answered in a coding the gateway cannot decode (\(coding)); not passed on"
        }
        if let charset = charset(response.header("content-type")), !isReadable(charset) {
            return "the upstream answered in charset \(charset), which the gateway cannot check for credentials; not passed on"
        }
        return nil
    }

    /// The headers a worker gets: names and values scrubbed, and none that describes a
    /// coding the body no longer has.
    static func headers(_ response: UpstreamResponse, _ scrubber: Scrubber) -> [String: String] {
        let coded = response.header("content-encoding") != nil
        var headers: [String: String] = [:]
        for (name, value) in response.headers {
            if name == "content-encoding" || name == "transfer-encoding" || (coded && name == "content-length") { continue }
            let (key, clean) = (scrubber.scrubLowercased(name), scrubber.scrub(value))
            headers[key] = headers[key].map { $0 + ", " + clean } ?? clean
        }
        return headers
    }

    /// The charset a Content-Type names, lower-cased and unquoted.
    private static func charset(_ contentType: String?) -> String? {
        guard let lower = contentType?.lowercased(), let start = lower.range(of: "charset=")?.upperBound else { return nil }
        let value = lower[start...].prefix { $0 != ";" }
        return String(value.filter { $0 != "\"" && $0 != "'" && $0 != " " && $0 != "\t" })
    }

    /// Charsets in which ASCII text is its ASCII bytes, and UTF-16, whose forms the
    /// scrubber knows. UTF-32, UTF-7, EBCDIC and the ISO-2022 family are not among them.
    private static func isReadable(_ charset: String) -> Bool {
        let name = charset.filter { $0 != "-" && $0 != "_" }
        let exact: Set<String> = [
            "utf8", "usascii", "ascii", "latin1", "utf16", "utf16le", "utf16be", "shiftjis", "sjis", "eucjp", "euckr", "gb2312",
            "gbk", "gb18030", "big5", "koi8r", "koi8u", "binary",
        ]
        return exact.contains(name) || ["iso8859", "windows125", "cp125"].contains { name.hasPrefix($0) }
    }
}
