/// Reads typed fields out of a JSON object; every error names the field's full path.
public struct Fields: Sendable {
    public let object: [String: JSONValue]
    public let path: String

    public init(_ value: JSONValue?, path: String) throws(ProtocolError) {
        guard case .object(let object)? = value else { throw ProtocolError.invalid(path, "expected an object") }
        self.object = object
        self.path = path
    }

    private func name(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    private func required(_ key: String) throws(ProtocolError) -> JSONValue {
        guard let value = object[key] else { throw ProtocolError.invalid(name(key), "missing") }
        return value
    }

    public func string(_ key: String) throws(ProtocolError) -> String {
        guard case .string(let value) = try required(key) else { throw ProtocolError.invalid(name(key), "expected a string") }
        return value
    }

    public func optionalString(_ key: String) throws(ProtocolError) -> String? {
        guard let value = object[key], !value.isNull else { return nil }
        guard case .string(let string) = value else { throw ProtocolError.invalid(name(key), "expected a string") }
        return string
    }

    public func int(_ key: String) throws(ProtocolError) -> Int64 {
        guard case .number(let number) = try required(key), let value = number.int64 else {
            throw ProtocolError.invalid(name(key), "expected an integer")
        }
        return value
    }

    public func nonNegativeInt(_ key: String) throws(ProtocolError) -> Int64 {
        let value = try int(key)
        guard value >= 0 else { throw ProtocolError.invalid(name(key), "must not be negative") }
        return value
    }

    public func optionalNumber(_ key: String) throws(ProtocolError) -> JSONNumber? {
        guard let value = object[key], !value.isNull else { return nil }
        guard case .number(let number) = value else { throw ProtocolError.invalid(name(key), "expected a number") }
        return number
    }

    public func credits(_ key: String) throws(ProtocolError) -> Credits {
        guard case .number(let number) = try required(key) else { throw ProtocolError.invalid(name(key), "expected a number") }
        return try Credits(number, field: name(key))
    }

    public func nested(_ key: String) throws(ProtocolError) -> Fields {
        try Fields(required(key), path: name(key))
    }

    public func optionalNested(_ key: String) throws(ProtocolError) -> Fields? {
        guard let value = object[key], !value.isNull else { return nil }
        return try Fields(value, path: name(key))
    }

    public func strings(_ key: String) throws(ProtocolError) -> [String] {
        guard case .array(let items) = try required(key) else { throw ProtocolError.invalid(name(key), "expected an array") }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let string) = item else {
                throw ProtocolError.invalid("\(name(key))[\(index)]", "expected a string")
            }
            result.append(string)
        }
        return result
    }
}

/// Credits in fixed point: integer micro-credits, never floating point.
public struct Credits: Sendable, Hashable, Comparable, CustomStringConvertible {
    public static let scale = 6
    public static let microsPerCredit: Int64 = 1_000_000
    public var micros: Int64

    public init(micros: Int64) { self.micros = micros }
    public init(whole: Int64) { micros = whole * Self.microsPerCredit }
    public static let zero = Credits(micros: 0)

    /// From a wire number; digits past the sixth decimal round up to the next micro-credit.
    public init(_ number: JSONNumber, field: String) throws(ProtocolError) {
        guard let micros = number.scaled(by: Self.scale) else {
            throw ProtocolError.invalid(field, "\(number.text) is out of range")
        }
        guard micros >= 0 else { throw ProtocolError.invalid(field, "must not be negative") }
        self.micros = micros
    }

    /// Parses a decimal such as "12.5" (command lines and job files).
    public init?(parsing text: String) {
        guard let number = JSONNumber(text: text), let micros = number.scaled(by: Self.scale), micros >= 0 else {
            return nil
        }
        self.micros = micros
    }

    public static func < (lhs: Credits, rhs: Credits) -> Bool { lhs.micros < rhs.micros }
    /// Saturates: a hostile sum cannot wrap around to a small charge.
    public static func + (lhs: Credits, rhs: Credits) -> Credits {
        let (sum, overflow) = lhs.micros.addingReportingOverflow(rhs.micros)
        return Credits(micros: overflow ? Int64.max : sum)
    }
    public static func - (lhs: Credits, rhs: Credits) -> Credits { Credits(micros: lhs.micros - rhs.micros) }

    /// Decimal text with no trailing zeros: "12", "0.25".
    public var description: String {
        let whole = micros / Self.microsPerCredit
        let fraction = micros % Self.microsPerCredit
        if fraction == 0 { return String(whole) }
        // Trailing zeros dropped on the integer, not the text: it is in every call's answer.
        var significant = fraction.magnitude
        var places = Self.scale
        while significant % 10 == 0 {
            significant /= 10
            places -= 1
        }
        let digits = String(significant)
        let sign = micros < 0 && whole == 0 ? "-" : ""
        return sign + String(whole) + "." + String(repeating: "0", count: places - digits.count) + digits
    }

    public var json: JSONValue {
        // The text is a valid JSON number by construction.
        .number(JSONNumber(text: description) ?? JSONNumber(0))
    }
}
