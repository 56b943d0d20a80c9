/// Replaces every secret in what goes back to a worker or into a log: as set, and in each
/// form an upstream may write it back in, so that the worker cannot undo the form to read
/// it: percent-encoded (either case of hex), JSON-escaped (as JavaScript, PHP with "\/", Go
/// with "\u003c", Python with "\u00e9" write it), HTML-escaped, and each of those in UTF-16
/// (either byte order). A form is replaced by the mask in the same form, so that the text
/// around it still reads. One pass over the bytes, however many forms.
struct Scrubber: Sendable {
    static let mask = "[redacted]"

    private let table: NeedleTable
    /// The same, lower-cased: header names come lower-cased.
    private let lowercaseTable: NeedleTable

    init(_ credentials: [Credential]) {
        // Short values would redact ordinary text; a credential that short is no secret.
        let secrets = Set(credentials.flatMap(\.secretForms).filter { $0.utf8.count >= 6 })
        var needles: [Needle] = []
        for text in secrets.flatMap(Self.textForms) {
            needles.append(Needle(bytes: Array(text.utf8), mask: Array(Self.mask.utf8)))
            for bigEndian in [false, true] {
                let mask = Self.utf16(Self.mask, bigEndian: bigEndian)
                needles.append(Needle(bytes: Self.utf16(text, bigEndian: bigEndian), mask: mask))
            }
        }
        table = NeedleTable(needles)
        lowercaseTable = NeedleTable(needles.map { Needle(bytes: $0.bytes.map(Self.lowercased), mask: $0.mask) })
    }

    func scrub(_ text: String) -> String { Self.scrub(text, table) }

    func scrub(_ bytes: [UInt8]) -> [UInt8] { bytes.withUnsafeBufferPointer(table.scrubbed) ?? bytes }

    /// For text an upstream's secret may reach only lower-cased, such as header names.
    func scrubLowercased(_ text: String) -> String { Self.scrub(text, lowercaseTable) }

    /// `text` itself, uncopied, when no needle is in it.
    private static func scrub(_ text: String, _ table: NeedleTable) -> String {
        guard !table.isEmpty else { return text }
        let scrubbed = text.utf8.withContiguousStorageIfAvailable(table.scrubbed)
            ?? Array(text.utf8).withUnsafeBufferPointer(table.scrubbed)
        return scrubbed.map { String(decoding: $0, as: UTF8.self) } ?? text
    }

    // MARK: - Forms

    /// The texts `secret` may come back as, itself included.
    static func textForms(_ secret: String) -> Set<String> {
        let percent = URLEncoding.component(secret)
        var forms: Set<String> = [secret, percent, lowercasedEscapes(percent)]
        for options in 0..<8 {
            let json = jsonEscaped(secret, slash: options & 1 != 0, htmlSafe: options & 2 != 0, asciiOnly: options & 4 != 0)
            forms.insert(json)
            forms.insert(htmlEscaped(json, apostrophe: "&#39;"))
            forms.insert(htmlEscaped(json, apostrophe: "&#x27;"))
        }
        return forms
    }

    /// The inside of a JSON string: '"', '\' and controls escaped always; '/' as "\/",
    /// '<', '>', '&' as "\u003c"..., non-ASCII as "\u00e9" when asked.
    private static func jsonEscaped(_ text: String, slash: Bool, htmlSafe: Bool, asciiOnly: Bool) -> String {
        var output = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "/" where slash: output += "\\/"
            case _ where scalar.value < 0x20 || (htmlSafe && "<>&".unicodeScalars.contains(scalar)):
                output += unicodeEscape(UInt16(scalar.value))
            case _ where asciiOnly && !scalar.isASCII: output += String(scalar).utf16.map(unicodeEscape).joined()
            default: output.unicodeScalars.append(scalar)
            }
        }
        return output
    }

    private static func unicodeEscape(_ unit: UInt16) -> String {
        let hex = String(unit, radix: 16)
        return "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
    }

    private static func htmlEscaped(_ text: String, apostrophe: String) -> String {
        var output = ""
        for character in text {
            switch character {
            case "&": output += "&amp;"
            case "<": output += "&lt;"
            case ">": output += "&gt;"
            case "\"": output += "&quot;"
            case "'": output += apostrophe
            default: output.append(character)
            }
        }
        return output
    }

    /// "%2F" as "%2f": the hex after each '%', and nothing else, lower-cased.
    private static func lowercasedEscapes(_ text: String) -> String {
        var bytes = Array(text.utf8)
        for index in bytes.indices where bytes[index] == UInt8(ascii: "%") {
            for digit in index + 1..<min(index + 3, bytes.count) { bytes[digit] = lowercased(bytes[digit]) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func utf16(_ text: String, bigEndian: Bool) -> [UInt8] {
        text.utf16.flatMap { unit in
            bigEndian ? [UInt8(unit >> 8), UInt8(unit & 0xFF)] : [UInt8(unit & 0xFF), UInt8(unit >> 8)]
        }
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        byte >= 0x41 && byte <= 0x5A ? byte | 0x20 : byte
    }
}

private struct Needle: Sendable {
    var bytes: [UInt8]
    /// What replaces it.
    var mask: [UInt8]
}

/// Needles by their first byte, each bucket longest first: at each position of the
/// haystack only the needles that can start there are tried.
private struct NeedleTable: Sendable {
    private let buckets: [[Needle]]
    let isEmpty: Bool

    init(_ needles: [Needle]) {
        var seen: Set<[UInt8]> = []
        var buckets = [[Needle]](repeating: [], count: 256)
        for needle in needles.sorted(by: { $0.bytes.count > $1.bytes.count }) where !needle.bytes.isEmpty {
            guard seen.insert(needle.bytes).inserted else { continue }
            buckets[Int(needle.bytes[0])].append(needle)
        }
        self.buckets = buckets
        isEmpty = seen.isEmpty
    }

    /// `haystack` with every needle replaced by its mask; nil when none is there.
    func scrubbed(_ haystack: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard !isEmpty else { return nil }
        var output: [UInt8] = []
        var copied = 0
        var index = 0
        while index < haystack.count {
            let bucket = buckets[Int(haystack[index])]
            guard !bucket.isEmpty, let needle = bucket.first(where: { Self.matches($0.bytes, haystack, at: index) }) else {
                index += 1
                continue
            }
            if output.isEmpty { output.reserveCapacity(haystack.count) }
            output.append(contentsOf: haystack[copied..<index])
            output.append(contentsOf: needle.mask)
            index += needle.bytes.count
            copied = index
        }
        guard copied > 0 else { return nil }
        output.append(contentsOf: haystack[copied...])
        return output
    }

    private static func matches(_ needle: [UInt8], _ haystack: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        guard needle.count <= haystack.count - index else { return false }
        for offset in 1..<needle.count where haystack[index + offset] != needle[offset] { return false }
        return true
    }
}
