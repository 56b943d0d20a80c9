import PurserProtocol
import Testing

/// The parser against small documents in the spirit of the JSONTestSuite corpus (see
/// JSONCase): accepted documents also come back whole through the serializer.
@Suite("JSON accept and reject cases", .timeLimit(.minutes(1)))
struct JSONConformanceTests {
    @Test(arguments: acceptCases + rejectCases + implementationDefinedCases)
    func parse(_ document: JSONCase) throws {
        switch document.outcome {
        case .accept(let expected):
            let value = try JSONParser.parse(document.bytes)
            if let expected { #expect(value == expected) }
            let text = value.serialized()
            #expect(!text.utf8.contains(0x0A))
            #expect(try JSONParser.parse(text) == value, "\(text)")
        case .reject(let code):
            #expect {
                try JSONParser.parse(document.bytes)
            } throws: { error in
                (error as? JSONParseError)?.code == code
            }
        }
    }

    /// The error's offset points into the document, so that a log line can name it.
    @Test(arguments: rejectCases + implementationDefinedCases)
    func errorsPointIntoTheDocument(_ document: JSONCase) {
        guard case .reject = document.outcome else { return }
        do {
            _ = try JSONParser.parse(document.bytes)
        } catch {
            #expect(error.offset >= 0 && error.offset <= document.bytes.count, "\(error)")
        }
    }

    @Test func depthIsCountedFromTheOptionGiven() throws {
        #expect(try JSONParser.parse("[[1]]", maxDepth: 2) == [[1]])
        #expect(throws: JSONParseError.self) { try JSONParser.parse("[[1]]", maxDepth: 1) }
        #expect(try JSONParser.parse("1", maxDepth: 0) == 1)
        #expect(throws: JSONParseError.self) { try JSONParser.parse("[]", maxDepth: 0) }
    }
}

/// Numbers are kept as their text and read exactly: credits must not go through Double.
@Suite("JSON numbers at the edges", .timeLimit(.minutes(1)))
struct JSONNumberEdgeTests {
    static let integers: [(String, Int64?)] = [
        ("0", 0), ("-0", 0), ("2.0", 2), ("1e3", 1000), ("100e-2", 1), ("1.5", nil), ("0.1e1", 1),
        ("9223372036854775807", .max), ("-9223372036854775808", .min),
        ("9223372036854775808", nil), ("-9223372036854775809", nil),
        ("922337203685477580.7e1", .max), ("0.9223372036854775807e19", .max),
        ("1e18", 1_000_000_000_000_000_000), ("1e19", nil), ("10e18", nil),
        ("1e-400", nil), ("0e99999999999999999999", 0), ("0.000e-5", 0),
        ("1e99999999999999999999", nil), ("-1e99999999999999999999", nil),
        ("100000000000000000000e-2", 1_000_000_000_000_000_000),
        ("123e-10000000", nil),
    ]

    @Test(arguments: integers)
    func int64(_ text: String, _ expected: Int64?) throws {
        #expect(JSONNumber(text: text)?.int64 == expected)
    }

    /// Credits are micro-credits, rounded up.
    static let scaled: [(String, Int64?)] = [
        ("1.5", 1_500_000), ("0.0000001", 1), ("-0.0000001", 0), ("1e-7", 1), ("2.5e3", 2_500_000_000),
        ("9223372036854.775807", .max), ("9223372036854.775808", nil), ("-9223372036854.775808", .min),
        ("9223372036854.7758069", .max), ("1e-99999999999", 1), ("-1e-99999999999", 0), ("0.0000005e1", 5),
        ("1e99999999999", nil), ("0", 0), ("-0.0", 0),
    ]

    @Test(arguments: scaled)
    func scaledBySix(_ text: String, _ expected: Int64?) throws {
        #expect(JSONNumber(text: text)?.scaled(by: 6) == expected)
    }

    @Test func textThatIsNotOneNumberIsRefused() {
        for text in ["", "-", "+1", "01", "1.", ".1", "1e", "1e+", "0x1", "1 ", " 1", "NaN", "1_000", "1e1.5", "--1"] {
            #expect(JSONNumber(text: text) == nil, "\(text)")
        }
    }

    @Test func doublesRoundTrip() throws {
        for value in [0.1, -2.5e-300, 1.7976931348623157e308, 5e-324, 123456789.125, -0.0] {
            let number = try #require(JSONNumber(value))
            #expect(number.double == value, "\(number.text)")
        }
        #expect(JSONNumber(Double.nan) == nil)
        #expect(JSONNumber(-Double.infinity) == nil)
    }
}
