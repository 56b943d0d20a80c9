/// A worker's path, relative to the base: checked as written and never normalised, so that
/// what was checked is what is sent. Refused: anything a common server could read as a
/// step out of the base ("..", also as "..;", "%2e%2e", an overlong UTF-8 dot, a fullwidth
/// dot), or as another path than the one checked (matrix parameters, encoded '/', '\').
enum PathPolicy {
    static let maxBytes = 4096

    /// The path and its query, split at the first "?".
    static func check(_ path: String) throws(GatewayFailure) -> (path: String, query: String?) {
        guard !path.isEmpty, path.utf8.count <= maxBytes else { throw invalid("the path must be 1 to \(maxBytes) bytes") }
        guard path.hasPrefix("/") else { throw invalid("the path must start with '/' (it is relative to the base URL)") }
        guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "\\") && $0 != UInt8(ascii: "#") }) else {
            throw invalid("the path may hold printable ASCII only, without '\\' or '#' (percent-encode the rest)")
        }
        let split = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let pathPart = split[0]
        try checkDecoded(pathPart)
        let rawSegments = pathPart.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        for (index, segment) in rawSegments.enumerated() {
            guard let bytes = URLEncoding.decode(segment) else { throw invalid("the path has a malformed %-escape") }
            if bytes.contains(UInt8(ascii: "/")) { throw invalid("the path may not hold an encoded '/'") }
            if bytes.isEmpty && index < rawSegments.count - 1 { throw invalid("the path may not hold empty segments") }
            // Windows and IIS drop trailing dots and spaces from a segment: "..." and ".. " are "..".
            if bytes.contains(0x2E) && bytes.allSatisfy({ $0 == 0x2E || $0 == 0x20 }) {
                throw invalid("the path may not hold a segment of dots ('.', '..', '...'), also percent-encoded")
            }
        }
        if split.count > 1, URLEncoding.decode(split[1]) == nil { throw invalid("the query has a malformed %-escape") }
        return (String(pathPart), split.count > 1 ? String(split[1]) : nil)
    }

    /// The path once percent-decoded: no control character, '%' (double encoding), '\' or
    /// ';' (matrix parameters: servlet containers read "..;" as ".."); valid UTF-8 (an
    /// overlong "%c0%ae" is a dot to some decoders); no character that Unicode
    /// compatibility normalisation turns into one of . / \ ; % ? #.
    private static func checkDecoded(_ pathPart: Substring) throws(GatewayFailure) {
        guard let decoded = URLEncoding.decode(pathPart) else { throw invalid("the path has a malformed %-escape") }
        if decoded.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "\\") }) {
            throw invalid("the path decodes to a control character, '%' or '\\'")
        }
        if decoded.contains(UInt8(ascii: ";")) {
            throw invalid("the path may not hold ';' (matrix parameters), also percent-encoded")
        }
        guard let text = String(validating: decoded, as: UTF8.self) else {
            throw invalid("the path does not decode to valid UTF-8")
        }
        if text.unicodeScalars.contains(where: { isConfusable($0.value) }) {
            throw invalid("the path holds a character some servers normalise to '.', '/', '\\', ';', '%', '?' or '#'")
        }
    }

    /// The code points whose NFKC form holds '.', '/', '\', ';', '%', '?' or '#' (Unicode 14):
    /// fullwidth and small forms, dot leaders, the ellipsis, "a/c", "1." and their kin.
    private static let confusables: [ClosedRange<UInt32>] = [
        0x037E...0x037E, 0x2024...0x2026, 0x2047...0x2049, 0x2100...0x2101, 0x2105...0x2106, 0x2488...0x249B,
        0x33C2...0x33C2, 0x33C7...0x33C7, 0x33D8...0x33D8, 0xFE14...0xFE14, 0xFE16...0xFE16, 0xFE19...0xFE19,
        0xFE30...0xFE30, 0xFE52...0xFE52, 0xFE54...0xFE54, 0xFE56...0xFE56, 0xFE5F...0xFE5F, 0xFE68...0xFE68,
        0xFE6A...0xFE6A, 0xFF03...0xFF03, 0xFF05...0xFF05, 0xFF0E...0xFF0F, 0xFF1B...0xFF1B, 0xFF1F...0xFF1F,
        0xFF3C...0xFF3C, 0x1F100...0x1F100,
    ]

    private static func isConfusable(_ value: UInt32) -> Bool {
        value >= 0x037E && confusables.contains { $0.contains(value) }
    }

    private static func invalid(_ message: String) -> GatewayFailure { GatewayFailure(.invalidRequest, message) }
}
