import PurserProtocol

/// One small JSON document and what the parser must make of it, named as in the
/// JSONTestSuite corpus (y_: must accept, n_: must reject, i_: the RFC leaves it to the
/// parser, and the expectation is this parser's choice). Written here, not copied.
struct JSONCase: Sendable, CustomStringConvertible {
    enum Outcome: Sendable {
        case accept(JSONValue?)
        case reject(JSONParseError.Code)
    }

    let name: String
    let bytes: [UInt8]
    let outcome: Outcome

    var description: String { name }

    /// `text` with every `⟨HH⟩` replaced by the byte 0xHH (for bytes that are not UTF-8,
    /// and control bytes).
    init(_ name: String, _ text: String, _ outcome: Outcome) {
        self.name = name
        self.outcome = outcome
        var bytes: [UInt8] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "⟨") {
            bytes += Array(rest[..<open].utf8)
            let hex = rest[rest.index(after: open)...].prefix(2)
            bytes.append(UInt8(hex, radix: 16)!)
            rest = rest[rest.index(open, offsetBy: 4)...]
        }
        self.bytes = bytes + Array(rest.utf8)
    }

    init(_ name: String, bytes: [UInt8], _ outcome: Outcome) {
        self.name = name
        self.bytes = bytes
        self.outcome = outcome
    }
}

func accept(_ value: JSONValue? = nil) -> JSONCase.Outcome { .accept(value) }
func reject(_ code: JSONParseError.Code) -> JSONCase.Outcome { .reject(code) }
func number(_ text: String) -> JSONValue { .number(JSONNumber(text: text)!) }

/// `depth` arrays, one inside the other.
func nestedArrays(_ depth: Int) -> String {
    String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
}
