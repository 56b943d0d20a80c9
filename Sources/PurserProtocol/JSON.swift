// JSON.swift — PurserProtocol
//
// A Foundation-free JSON value type, strict RFC 8259 parser and compact
// deterministic serializer for the JSON-RPC line protocol.
//
// The peer may be hostile, so the parser:
//   * accepts exactly one RFC 8259 value surrounded by optional whitespace;
//   * rejects invalid UTF-8 anywhere (overlongs, UTF-8-encoded surrogates,
//     code points above U+10FFFF, truncated sequences);
//   * rejects raw control characters in strings, lone surrogate escapes,
//     malformed numbers, NaN/Infinity, trailing commas and duplicate keys;
//   * is iterative (an explicit stack, no recursion), and stops with `tooDeep`
//     as soon as nesting exceeds `maxDepth`, so hostile nesting cannot
//     overflow the stack;
//   * never traps on input-derived data: every read is bounds-checked by hand
//     and numbers are kept as validated text (no overflow on huge exponents).

// MARK: - JSONNumber

/// A JSON number, stored as its validated literal text.
///
/// Equality and hashing compare the literal text, so `1.0` and `1` are
/// different `JSONNumber`s (compare `int64`, `double` or `scaled(by:)` for
/// numeric equality).
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The validated literal, exactly as in the input (e.g. "1.50", "-3e2").
    public let text: String

    /// Creates a number from literal text, or nil if `text` does not match the
    /// RFC 8259 number grammar in full.
    public init?(text: String) {
        var copy = text
        let valid = copy.withUTF8 { buf -> Bool in
            guard let base = buf.baseAddress, buf.count > 0 else { return false }
            do {
                return try _JSONNumberGrammar.scan(base, from: 0, end: buf.count) == buf.count
            } catch {
                return false
            }
        }
        guard valid else { return nil }
        self.text = text
    }

    /// Trusted initializer for text that has already been validated.
    fileprivate init(_validatedText text: String) {
        self.text = text
    }

    public init(_ v: Int64) {
        self.text = String(v)
    }

    public init(_ v: Int) {
        self.text = String(v)
    }

    /// The shortest text that round-trips to `v`; nil if `v` is NaN or infinite.
    /// Exponents are written without "+" and without leading zeros ("1e-5", "1e16").
    public init?(_ v: Double) {
        guard v.isFinite else { return nil }
        let raw = Array(v.description.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var k = 0
        while k < raw.count {
            let b = raw[k]
            out.append(b)
            k += 1
            if b == 0x65 || b == 0x45 {  // e / E
                if k < raw.count, raw[k] == 0x2B { k += 1 }          // drop "+"
                else if k < raw.count, raw[k] == 0x2D { out.append(0x2D); k += 1 }
                // drop leading zeros of the exponent, keeping at least one digit
                while k + 1 < raw.count, raw[k] == 0x30 { k += 1 }
            }
        }
        let candidate = String(decoding: out, as: UTF8.self)
        guard let validated = JSONNumber(text: candidate) else { return nil }
        self = validated
    }

    public var description: String { text }

    /// The exact integer value if the literal denotes an integer in Int64 range
    /// ("42", "-0", "2.0", "1e3", "100e-2" all qualify; "1.5" does not).
    public var int64: Int64? {
        _integerValue(scale: 0, roundUp: false)
    }

    /// The nearest Double (±infinity for literals beyond the Double range).
    public var double: Double {
        Double(text) ?? 0
    }

    /// The value multiplied by 10^`scale` as an exact integer, rounding up
    /// (toward +infinity) any digits beyond `scale`; nil if the result does not
    /// fit in Int64. Works on the decimal digits, never on Double.
    ///
    /// "1.5" scale 6 → 1_500_000; "0.0000001" → 1; "-0.0000001" → 0;
    /// "1e-7" → 1; "2.5e3" → 2_500_000_000.
    public func scaled(by scale: Int) -> Int64? {
        _integerValue(scale: scale, roundUp: true)
    }

    private func _integerValue(scale: Int, roundUp: Bool) -> Int64? {
        var copy = text
        return copy.withUTF8 { buf -> Int64? in
            _JSONNumberGrammar.integerValue(buf, scale: scale, roundUp: roundUp)
        }
    }
}

/// RFC 8259 number grammar and exact decimal arithmetic on the digits.
private enum _JSONNumberGrammar {
    @inline(__always)
    static func isDigit(_ b: UInt8) -> Bool { b &- 0x30 < 10 }

    /// Scans `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?` starting at
    /// `start` and returns the index just past it. Throws `invalidNumber` at the
    /// offending byte. Never reads at or beyond `end`.
    @inline(__always)
    static func scan(_ p: UnsafePointer<UInt8>, from start: Int, end: Int) throws(JSONParseError) -> Int {
        var i = start
        if i < end && p[i] == 0x2D { i += 1 }  // -
        guard i < end else { throw JSONParseError(.invalidNumber, i) }
        let first = p[i]
        if first == 0x30 {
            i += 1
            if i < end && isDigit(p[i]) { throw JSONParseError(.invalidNumber, i) }  // leading zero
        } else if first &- 0x31 < 9 {
            i += 1
            while i < end && isDigit(p[i]) { i += 1 }
        } else {
            throw JSONParseError(.invalidNumber, i)
        }
        if i < end && p[i] == 0x2E {  // .
            i += 1
            guard i < end && isDigit(p[i]) else { throw JSONParseError(.invalidNumber, i) }
            i += 1
            while i < end && isDigit(p[i]) { i += 1 }
        }
        if i < end && (p[i] | 0x20) == 0x65 {  // e / E
            i += 1
            if i < end && (p[i] == 0x2B || p[i] == 0x2D) { i += 1 }
            guard i < end && isDigit(p[i]) else { throw JSONParseError(.invalidNumber, i) }
            i += 1
            while i < end && isDigit(p[i]) { i += 1 }
        }
        return i
    }

    /// value × 10^scale as Int64. With `roundUp`, discarded fractional digits
    /// round toward +infinity; without it, a non-integer yields nil.
    /// `buf` must hold a grammar-valid number literal.
    static func integerValue(_ buf: UnsafeBufferPointer<UInt8>, scale: Int, roundUp: Bool) -> Int64? {
        let n = buf.count
        guard n > 0 else { return nil }
        var i = 0
        let negative = buf[0] == 0x2D
        if negative { i = 1 }
        let intStart = i
        while i < n && isDigit(buf[i]) { i += 1 }
        let intEnd = i
        var fracStart = i
        var fracEnd = i
        if i < n && buf[i] == 0x2E {
            i += 1
            fracStart = i
            while i < n && isDigit(buf[i]) { i += 1 }
            fracEnd = i
        }
        // Exponent, saturated far beyond anything that could still fit Int64.
        let limit = 1_000_000_000_000
        var exponent = 0
        if i < n && (buf[i] | 0x20) == 0x65 {
            i += 1
            var expNegative = false
            if i < n && (buf[i] == 0x2B || buf[i] == 0x2D) {
                expNegative = buf[i] == 0x2D
                i += 1
            }
            while i < n && isDigit(buf[i]) {
                if exponent < limit { exponent = exponent * 10 + Int(buf[i] &- 0x30) }
                i += 1
            }
            if expNegative { exponent = -exponent }
        }
        guard i == n else { return nil }  // not a valid literal (cannot happen for validated text)

        let clampedScale = min(max(scale, -limit), limit)
        let intCount = intEnd - intStart
        let fracCount = fracEnd - fracStart
        let total = intCount + fracCount
        // value = digits(0..<total) × 10^e
        var e = exponent - fracCount + clampedScale

        @inline(__always) func digit(_ k: Int) -> UInt64 {
            let b = k < intCount ? buf[intStart + k] : buf[fracStart + (k - intCount)]
            return UInt64(b &- 0x30)
        }

        var lo = 0
        while lo < total && digit(lo) == 0 { lo += 1 }
        if lo == total { return 0 }  // zero, any sign
        var hi = total
        while digit(hi - 1) == 0 {  // terminates: digit(lo) != 0
            hi -= 1
            e += 1
        }
        let k = hi - lo  // significant digits, first and last non-zero

        var magnitude: UInt64 = 0
        var bump = false
        if e >= 0 {
            // magnitude < 10^(k+e) ≤ 10^19 < 2^64
            guard k + e <= 19 else { return nil }
            for j in lo..<hi { magnitude = magnitude * 10 + digit(j) }
            var r = 0
            while r < e { magnitude *= 10; r += 1 }
        } else {
            guard roundUp else { return nil }  // has a non-zero fractional part
            let integerDigits = k + e
            if integerDigits > 0 {
                guard integerDigits <= 19 else { return nil }
                for j in lo..<(lo + integerDigits) { magnitude = magnitude * 10 + digit(j) }
            }
            // The dropped digits include the last non-zero digit: the value is
            // strictly between two integers. Toward +infinity means +1 for
            // positives and plain truncation for negatives.
            bump = !negative
        }
        let int64Magnitude: UInt64 = 1 << 63
        if negative {
            if magnitude == int64Magnitude { return Int64.min }
            guard magnitude < int64Magnitude else { return nil }
            return -Int64(magnitude)
        } else {
            if bump {
                guard magnitude < UInt64(Int64.max) else { return nil }
                magnitude += 1
            }
            guard magnitude <= UInt64(Int64.max) else { return nil }
            return Int64(magnitude)
        }
    }
}

// MARK: - JSONValue

public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The member named `key`; nil unless this is an object that has it.
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var numberValue: JSONNumber? {
        if case .number(let n) = self { return n }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }
}

extension JSONValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension JSONValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int) { self = .number(JSONNumber(value)) }
}

extension JSONValue: ExpressibleByFloatLiteral {
    /// A non-finite literal (e.g. `1e400`) becomes `.null`.
    public init(floatLiteral value: Double) {
        if let n = JSONNumber(value) { self = .number(n) } else { self = .null }
    }
}

extension JSONValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension JSONValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
}

extension JSONValue: ExpressibleByDictionaryLiteral {
    /// Repeated keys in a literal: the last one wins.
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension JSONValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .null }
}

// MARK: - JSONParseError

public struct JSONParseError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        fileprivate enum Storage: UInt8, Sendable, Hashable {
            case invalidUTF8
            case unexpectedEnd
            case unexpectedCharacter
            case invalidNumber
            case invalidEscape
            case invalidString
            case tooDeep
            case trailingData
            case duplicateKey
        }

        fileprivate let storage: Storage

        fileprivate init(_ storage: Storage) { self.storage = storage }

        /// Malformed UTF-8 (overlong, encoded surrogate, > U+10FFFF, truncated).
        public static let invalidUTF8 = Code(.invalidUTF8)
        /// The input ended inside a value.
        public static let unexpectedEnd = Code(.unexpectedEnd)
        /// A byte that cannot start or continue the value here.
        public static let unexpectedCharacter = Code(.unexpectedCharacter)
        /// A number that does not follow the RFC 8259 grammar.
        public static let invalidNumber = Code(.invalidNumber)
        /// An unknown backslash escape or a malformed `\u` escape.
        public static let invalidEscape = Code(.invalidEscape)
        /// A raw control character or an unpaired surrogate escape in a string.
        public static let invalidString = Code(.invalidString)
        /// Arrays/objects nested deeper than the allowed maximum.
        public static let tooDeep = Code(.tooDeep)
        /// Non-whitespace after the top-level value.
        public static let trailingData = Code(.trailingData)
        /// An object with the same key twice.
        public static let duplicateKey = Code(.duplicateKey)

        public var description: String {
            switch storage {
            case .invalidUTF8: return "invalidUTF8"
            case .unexpectedEnd: return "unexpectedEnd"
            case .unexpectedCharacter: return "unexpectedCharacter"
            case .invalidNumber: return "invalidNumber"
            case .invalidEscape: return "invalidEscape"
            case .invalidString: return "invalidString"
            case .tooDeep: return "tooDeep"
            case .trailingData: return "trailingData"
            case .duplicateKey: return "duplicateKey"
            }
        }
    }

    public let code: Code
    /// Byte offset into the input where the problem was detected.
    public let offset: Int
    /// The offending byte, where one is meaningful (for the description).
    private let byte: UInt8?

    public init(code: Code, offset: Int) {
        self.code = code
        self.offset = offset
        self.byte = nil
    }

    fileprivate init(_ storage: Code.Storage, _ offset: Int, byte: UInt8? = nil) {
        self.code = Code(storage)
        self.offset = offset
        self.byte = byte
    }

    public var description: String {
        let what: String
        switch code.storage {
        case .invalidUTF8:
            what = "invalid UTF-8"
        case .unexpectedEnd:
            what = "unexpected end of input"
        case .unexpectedCharacter:
            if let b = byte {
                what = "unexpected character \(Self.render(b))"
            } else {
                what = "unexpected character"
            }
        case .invalidNumber:
            what = "invalid number"
        case .invalidEscape:
            what = "invalid escape sequence"
        case .invalidString:
            if let b = byte {
                what = "unescaped control character \(Self.render(b)) in string"
            } else {
                what = "unpaired UTF-16 surrogate escape in string"
            }
        case .tooDeep:
            what = "nesting too deep"
        case .trailingData:
            what = "unexpected data after the JSON value"
        case .duplicateKey:
            what = "duplicate object key"
        }
        return "invalid JSON at byte \(offset): \(what)"
    }

    private static func render(_ b: UInt8) -> String {
        if b >= 0x21 && b < 0x7F {
            return "'" + String(decoding: CollectionOfOne(b), as: UTF8.self) + "'"
        }
        let hex: [UInt8] = Array("0123456789ABCDEF".utf8)
        return "0x" + String(decoding: [hex[Int(b >> 4)], hex[Int(b & 0xF)]], as: UTF8.self)
    }
}

// MARK: - JSONParser

/// Strict RFC 8259 parser: exactly one value with optional surrounding
/// whitespace (space, tab, LF, CR). Throws `JSONParseError` with the byte
/// offset of the problem.
///
/// `maxDepth` bounds array/object nesting (each level counts 1; scalars at
/// the top level are depth 0). Parsing itself is iterative, but destroying,
/// comparing, hashing and serializing a `JSONValue` recurse once per level,
/// so keep the limit modest (the default is 128).
///
/// Object keys must be unique. Keys are Swift `String`s, which compare by
/// Unicode canonical equivalence, so two spellings of the same text (e.g.
/// precomposed "é" and "e" + U+0301) also count as a duplicate.
public enum JSONParser {
    public static let defaultMaxDepth = 128

    /// The one implementation; every other overload funnels into it.
    public static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        guard let base = bytes.baseAddress, bytes.count > 0 else {
            throw JSONParseError(.unexpectedEnd, 0)
        }
        var parser = _JSONParserCore(base: base, end: bytes.count, maxDepth: max(0, maxDepth))
        return try parser.parseDocument()
    }

    public static func parse(
        _ bytes: UnsafeRawBufferPointer, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        try parse(bytes.assumingMemoryBound(to: UInt8.self), maxDepth: maxDepth)
    }

    public static func parse(
        _ bytes: [UInt8], maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        let result = bytes.withUnsafeBufferPointer { buf in
            Result { () throws(JSONParseError) -> JSONValue in try parse(buf, maxDepth: maxDepth) }
        }
        return try result.get()
    }

    public static func parse(
        _ bytes: ArraySlice<UInt8>, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        let result = bytes.withUnsafeBufferPointer { buf in
            Result { () throws(JSONParseError) -> JSONValue in try parse(buf, maxDepth: maxDepth) }
        }
        return try result.get()
    }

    public static func parse(
        _ string: String, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        var copy = string
        let result = copy.withUTF8 { buf in
            Result { () throws(JSONParseError) -> JSONValue in try parse(buf, maxDepth: maxDepth) }
        }
        return try result.get()
    }

    /// Any other byte collection (copied once if not contiguous).
    public static func parse(
        _ bytes: some Collection<UInt8>, maxDepth: Int = defaultMaxDepth
    ) throws(JSONParseError) -> JSONValue {
        let contiguous = bytes.withContiguousStorageIfAvailable { buf in
            Result { () throws(JSONParseError) -> JSONValue in try parse(buf, maxDepth: maxDepth) }
        }
        if let contiguous { return try contiguous.get() }
        return try parse(Array(bytes), maxDepth: maxDepth)
    }
}

/// Iterative parser over a byte buffer. Every read `p[j]` is guarded by
/// `j < end` (UnsafePointer reads are unchecked in optimized builds).
private struct _JSONParserCore {
    let p: UnsafePointer<UInt8>
    let end: Int
    let maxDepth: Int
    var i: Int = 0
    /// Reused buffer for strings that contain escapes.
    var scratch: [UInt8] = []

    init(base: UnsafePointer<UInt8>, end: Int, maxDepth: Int) {
        self.p = base
        self.end = end
        self.maxDepth = maxDepth
    }

    /// A pending object member. The key is appended as soon as it is parsed
    /// (with a `.null` placeholder value that the member's value replaces).
    struct Member {
        var key: String
        var keyOffset: Int
        var value: JSONValue
    }

    @inline(__always)
    mutating func skipWhitespace() {
        while i < end {
            let b = p[i]
            if b == 0x20 || b == 0x0A || b == 0x0D || b == 0x09 { i += 1 } else { return }
        }
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        // Open containers: the innermost is described by `inObject`/`start`,
        // its ancestors are saved on `parents` as `start << 1 | isObject`.
        // Elements of all open arrays share the `values` stack and members of
        // all open objects share the `members` stack, from `start` on, so each
        // container is built once, at its exact size, when it closes.
        var depth = 0
        var inObject = false
        var start = 0
        var parents: [Int] = []
        var values: [JSONValue] = []
        var members: [Member] = []
        skipWhitespace()
        outer: while true {
            // Here `i` is at the first byte of a value (whitespace skipped).
            guard i < end else { throw JSONParseError(.unexpectedEnd, i) }
            var value: JSONValue
            switch p[i] {
            case 0x22:  // "
                value = .string(try parseString())
            case 0x7B:  // {
                guard depth < maxDepth else { throw JSONParseError(.tooDeep, i) }
                i += 1
                skipWhitespace()
                if i < end && p[i] == 0x7D {
                    i += 1
                    value = .object([:])
                } else {
                    let keyOffset = i
                    let key = try parseKey()
                    if depth > 0 { parents.append(start << 1 | (inObject ? 1 : 0)) }
                    if members.capacity == 0 { members.reserveCapacity(16) }
                    inObject = true
                    start = members.count
                    depth += 1
                    members.append(Member(key: key, keyOffset: keyOffset, value: .null))
                    continue outer
                }
            case 0x5B:  // [
                guard depth < maxDepth else { throw JSONParseError(.tooDeep, i) }
                i += 1
                skipWhitespace()
                if i < end && p[i] == 0x5D {
                    i += 1
                    value = .array([])
                } else {
                    if depth > 0 { parents.append(start << 1 | (inObject ? 1 : 0)) }
                    if values.capacity == 0 { values.reserveCapacity(16) }
                    inObject = false
                    start = values.count
                    depth += 1
                    continue outer
                }
            case 0x74:  // t
                try expectLiteral("true")
                value = .bool(true)
            case 0x66:  // f
                try expectLiteral("false")
                value = .bool(false)
            case 0x6E:  // n
                try expectLiteral("null")
                value = .null
            case 0x2D, 0x30...0x39:
                value = .number(try parseNumber())
            case 0x2B, 0x2E:  // "+1", ".5"
                throw JSONParseError(.invalidNumber, i)
            default:
                throw unexpected(at: i)
            }

            // A value is complete: attach it to the enclosing container, closing
            // as many containers as the input closes.
            while true {
                skipWhitespace()
                guard depth > 0 else {
                    guard i == end else { throw JSONParseError(.trailingData, i) }
                    return value
                }
                guard i < end else { throw JSONParseError(.unexpectedEnd, i) }
                let c = p[i]
                if inObject {
                    members[members.count - 1].value = consume value
                    if c == 0x2C {  // ,
                        i += 1
                        skipWhitespace()
                        let keyOffset = i
                        let key = try parseKey()
                        members.append(Member(key: key, keyOffset: keyOffset, value: .null))
                        continue outer
                    } else if c == 0x7D {  // }
                        i += 1
                        value = .object(try Self.takeObject(&members, from: start))
                    } else {
                        throw unexpected(at: i)
                    }
                } else {
                    values.append(consume value)
                    if c == 0x2C {  // ,
                        i += 1
                        skipWhitespace()
                        continue outer
                    } else if c == 0x5D {  // ]
                        i += 1
                        value = .array(Self.takeArray(&values, from: start))
                    } else {
                        throw unexpected(at: i)
                    }
                }
                depth -= 1
                if depth > 0 {
                    let saved = parents.removeLast()
                    inObject = saved & 1 != 0
                    start = saved >> 1
                }
            }
        }
    }

    /// Moves `members[start...]` into a dictionary (no retain/release per
    /// element: each slot is swapped with a trivial placeholder), checking
    /// for duplicate keys in input order.
    @inline(__always)
    static func takeObject(_ members: inout [Member], from start: Int) throws(JSONParseError) -> [String: JSONValue] {
        let count = members.count - start
        var object = [String: JSONValue](minimumCapacity: count)
        let duplicate: Int? = members.withUnsafeMutableBufferPointer { buf -> Int? in
            for k in start..<buf.count {
                var m = Member(key: "", keyOffset: 0, value: .null)
                swap(&m, &buf[k])
                if object.updateValue(m.value, forKey: m.key) != nil { return m.keyOffset }
            }
            return nil
        }
        while members.count > start { members.removeLast() }  // trivial placeholders
        if let duplicate { throw JSONParseError(.duplicateKey, duplicate) }
        return object
    }

    /// Moves `values[start...]` into a new array of exactly that size.
    @inline(__always)
    static func takeArray(_ values: inout [JSONValue], from start: Int) -> [JSONValue] {
        var array: [JSONValue] = []
        array.reserveCapacity(values.count - start)
        values.withUnsafeMutableBufferPointer { buf in
            for k in start..<buf.count {
                var v = JSONValue.null
                swap(&v, &buf[k])
                array.append(v)
            }
        }
        while values.count > start { values.removeLast() }  // trivial placeholders
        return array
    }

    /// `"key"` then optional whitespace, `:` and optional whitespace.
    @inline(__always)
    mutating func parseKey() throws(JSONParseError) -> String {
        guard i < end else { throw JSONParseError(.unexpectedEnd, i) }
        guard p[i] == 0x22 else { throw unexpected(at: i) }
        let key = try parseString()
        skipWhitespace()
        guard i < end else { throw JSONParseError(.unexpectedEnd, i) }
        guard p[i] == 0x3A else { throw unexpected(at: i) }
        i += 1
        skipWhitespace()
        return key
    }

    mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let q = literal.utf8Start
        for k in 0..<literal.utf8CodeUnitCount {
            guard i < end else { throw JSONParseError(.unexpectedEnd, i) }
            guard p[i] == q[k] else { throw unexpected(at: i) }
            i += 1
        }
    }

    @inline(__always)
    mutating func parseNumber() throws(JSONParseError) -> JSONNumber {
        let start = i
        i = try _JSONNumberGrammar.scan(p, from: start, end: end)
        let text = String(decoding: UnsafeBufferPointer(start: p + start, count: i - start), as: UTF8.self)
        return JSONNumber(_validatedText: text)
    }

    /// Error for an unexpected byte at `j` (< end): `invalidUTF8` if it starts
    /// malformed UTF-8, otherwise `unexpectedCharacter`.
    func unexpected(at j: Int) -> JSONParseError {
        let b = p[j]
        if b >= 0x80 && utf8SequenceLength(at: j) == 0 {
            return JSONParseError(.invalidUTF8, j)
        }
        return JSONParseError(.unexpectedCharacter, j, byte: b)
    }

    /// Length of the well-formed UTF-8 sequence starting at `j` (< end) with a
    /// non-ASCII lead byte, or 0 if malformed or truncated.
    @inline(__always)
    func utf8SequenceLength(at j: Int) -> Int {
        let b0 = p[j]
        var need: Int
        var lo: UInt8 = 0x80
        var hi: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lo = 0xA0                       // no overlongs
        case 0xE1...0xEC, 0xEE, 0xEF: need = 2
        case 0xED: need = 2; hi = 0x9F                       // no surrogates
        case 0xF0: need = 3; lo = 0x90                       // no overlongs
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; hi = 0x8F                       // ≤ U+10FFFF
        default: return 0                                    // 80–C1, F5–FF
        }
        guard end - j > need else { return 0 }
        let b1 = p[j + 1]
        guard b1 >= lo && b1 <= hi else { return 0 }
        var k = 2
        while k <= need {
            guard p[j + k] & 0xC0 == 0x80 else { return 0 }
            k += 1
        }
        return need + 1
    }

    /// Parses a string whose opening quote is at `i`; leaves `i` after the
    /// closing quote.
    mutating func parseString() throws(JSONParseError) -> String {
        i += 1
        var runStart = i
        var escaped = false
        while true {
            // Fast scan over plain ASCII.
            let stop = _jsonParserStringStop.utf8Start
            while i < end && stop[Int(p[i])] == 0x30 { i += 1 }
            guard i < end else { throw JSONParseError(.unexpectedEnd, i) }
            let b = p[i]
            if b == 0x22 {
                let run = UnsafeBufferPointer(start: p + runStart, count: i - runStart)
                i += 1
                if !escaped {
                    return String(decoding: run, as: UTF8.self)
                }
                scratch.append(contentsOf: run)
                return String(decoding: scratch, as: UTF8.self)
            } else if b == 0x5C {
                if !escaped {
                    escaped = true
                    scratch.removeAll(keepingCapacity: true)
                }
                scratch.append(contentsOf: UnsafeBufferPointer(start: p + runStart, count: i - runStart))
                try parseEscape()
                runStart = i
            } else if b < 0x20 {
                throw JSONParseError(.invalidString, i, byte: b)
            } else {
                let n = utf8SequenceLength(at: i)
                guard n > 0 else { throw JSONParseError(.invalidUTF8, i) }
                i += n
            }
        }
    }

    /// Decodes the escape whose backslash is at `i` into `scratch`.
    mutating func parseEscape() throws(JSONParseError) {
        let escapeStart = i
        guard i + 1 < end else { throw JSONParseError(.unexpectedEnd, i + 1) }
        let e = p[i + 1]
        switch e {
        case 0x22: scratch.append(0x22)
        case 0x5C: scratch.append(0x5C)
        case 0x2F: scratch.append(0x2F)
        case 0x62: scratch.append(0x08)  // b
        case 0x66: scratch.append(0x0C)  // f
        case 0x6E: scratch.append(0x0A)  // n
        case 0x72: scratch.append(0x0D)  // r
        case 0x74: scratch.append(0x09)  // t
        case 0x75:  // u
            var scalar = try hex4(at: i + 2)
            i += 6
            if scalar >= 0xD800 && scalar <= 0xDBFF {
                guard i < end else { throw JSONParseError(.unexpectedEnd, i) }
                guard p[i] == 0x5C else { throw JSONParseError(.invalidString, escapeStart) }
                guard i + 1 < end else { throw JSONParseError(.unexpectedEnd, i + 1) }
                guard p[i + 1] == 0x75 else { throw JSONParseError(.invalidString, escapeStart) }
                let low = try hex4(at: i + 2)
                guard low >= 0xDC00 && low <= 0xDFFF else {
                    throw JSONParseError(.invalidString, escapeStart)
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                i += 6
            } else if scalar >= 0xDC00 && scalar <= 0xDFFF {
                throw JSONParseError(.invalidString, escapeStart)
            }
            appendUTF8(scalar)
            return
        default:
            throw JSONParseError(.invalidEscape, i)
        }
        i += 2
    }

    @inline(__always)
    func hex4(at j: Int) throws(JSONParseError) -> UInt32 {
        var v: UInt32 = 0
        for k in j..<(j + 4) {
            guard k < end else { throw JSONParseError(.unexpectedEnd, k) }
            let b = p[k]
            let d: UInt8
            switch b {
            case 0x30...0x39: d = b - 0x30
            case 0x41...0x46: d = b - 0x41 + 10
            case 0x61...0x66: d = b - 0x61 + 10
            default: throw JSONParseError(.invalidEscape, k)
            }
            v = v << 4 | UInt32(d)
        }
        return v
    }

    /// Appends a Unicode scalar value (≤ 0x10FFFF, not a surrogate) as UTF-8.
    @inline(__always)
    mutating func appendUTF8(_ s: UInt32) {
        if s < 0x80 {
            scratch.append(UInt8(s))
        } else if s < 0x800 {
            scratch.append(UInt8(0xC0 | (s >> 6)))
            scratch.append(UInt8(0x80 | (s & 0x3F)))
        } else if s < 0x10000 {
            scratch.append(UInt8(0xE0 | (s >> 12)))
            scratch.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (s & 0x3F)))
        } else {
            scratch.append(UInt8(0xF0 | (s >> 18)))
            scratch.append(UInt8(0x80 | ((s >> 12) & 0x3F)))
            scratch.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            scratch.append(UInt8(0x80 | (s & 0x3F)))
        }
    }
}

// MARK: - Serializer

extension JSONValue {
    /// Compact JSON: no whitespace, object keys sorted by their UTF-8 bytes
    /// (i.e. by Unicode code point), strings escaped per RFC 8259 (`"`, `\`,
    /// control characters, DEL, the C1 controls U+0080-U+009F, U+2028/U+2029 and
    /// the bidirectional controls;
    /// "/" and all other non-ASCII characters are emitted raw). Never contains a
    /// newline byte, nor a byte a terminal acts on.
    public func serialized() -> String {
        var writer = _JSONWriter(capacity: 256)
        writer.write(self)
        return writer.withBytes { String(decoding: $0, as: UTF8.self) }
    }

    /// Appends the compact serialization (see `serialized()`) to `bytes`.
    public func serialize(into bytes: inout [UInt8]) {
        var writer = _JSONWriter(capacity: 256)
        writer.write(self)
        writer.withBytes { bytes.append(contentsOf: $0) }
    }
}

/// A growable byte buffer with unchecked appends after an explicit capacity
/// check (`ensure`), avoiding Array's per-append uniqueness/capacity checks.
private struct _JSONWriter: ~Copyable {
    private var base: UnsafeMutablePointer<UInt8>
    private var count: Int = 0
    private var capacity: Int

    init(capacity: Int) {
        self.capacity = max(capacity, 16)
        self.base = UnsafeMutablePointer<UInt8>.allocate(capacity: self.capacity)
    }

    deinit {
        base.deallocate()
    }

    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        body(UnsafeBufferPointer(start: base, count: count))
    }

    @inline(__always)
    mutating func ensure(_ extra: Int) {
        if capacity - count < extra { grow(extra) }
    }

    @inline(never)
    mutating func grow(_ extra: Int) {
        let newCapacity = max(capacity * 2, count + extra)
        let newBase = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        newBase.initialize(from: base, count: count)
        base.deallocate()
        base = newBase
        capacity = newCapacity
    }

    @inline(__always)
    mutating func byte(_ b: UInt8) {
        ensure(1)
        base[count] = b
        count += 1
    }

    @inline(__always)
    mutating func bytes(_ p: UnsafePointer<UInt8>, _ n: Int) {
        guard n > 0 else { return }
        ensure(n)
        (base + count).initialize(from: p, count: n)
        count += n
    }

    @inline(__always)
    mutating func literal(_ s: StaticString) {
        bytes(s.utf8Start, s.utf8CodeUnitCount)
    }

    mutating func write(_ value: JSONValue) {
        switch value {
        case .null:
            literal("null")
        case .bool(let b):
            literal(b ? "true" : "false")
        case .number(let n):
            var text = n.text
            text.withUTF8 { buf in
                if let p = buf.baseAddress { bytes(p, buf.count) }
            }
        case .string(let s):
            string(s)
        case .array(let elements):
            byte(0x5B)
            var first = true
            for element in elements {
                if !first { byte(0x2C) }
                first = false
                write(element)
            }
            byte(0x5D)
        case .object(let members):
            byte(0x7B)
            if members.count == 1, let only = members.first {
                string(only.key)
                byte(0x3A)
                write(only.value)
            } else if !members.isEmpty {
                // Sort the members in stack memory (heap only if large).
                withUnsafeTemporaryAllocation(of: (key: String, value: JSONValue).self, capacity: members.count) { buffer in
                    var filled = 0
                    for member in members where filled < buffer.count {
                        buffer.initializeElement(at: filled, to: member)
                        filled += 1
                    }
                    var sorted = UnsafeMutableBufferPointer(rebasing: buffer[..<filled])
                    sorted.sort { _jsonUTF8Less($0.key, $1.key) }
                    for k in 0..<filled {
                        let member = sorted.moveElement(from: k)
                        if k > 0 { byte(0x2C) }
                        string(member.key)
                        byte(0x3A)
                        write(member.value)
                    }
                }
            }
            byte(0x7D)
        }
    }

    /// The code point of E2 `second` `third` when the serializer escapes it, else nil.
    @inline(__always)
    static func escapedE2(_ second: UInt8, _ third: UInt8) -> UInt32? {
        let scalar = 0x2000 | UInt32(second & 0x3F) << 6 | UInt32(third & 0x3F)
        switch scalar {
        case 0x200E...0x200F, 0x2028...0x202E, 0x2066...0x2069: return scalar
        default: return nil
        }
    }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { buf in
            guard let p = buf.baseAddress else {
                literal("\"\"")
                return
            }
            let n = buf.count
            ensure(n + 2)
            base[count] = 0x22
            count += 1
            let stop = _jsonSerializerStringStop.utf8Start
            var runStart = 0
            var j = 0
            while j < n {
                let b = p[j]
                if stop[Int(b)] == 0x30 {
                    j += 1
                    continue
                }
                if b == 0xC2 {
                    // C1 controls U+0080-U+009F (C2 80-C2 9F): terminals may act on them
                    // (U+009B is CSI), so a worker's text never carries them raw.
                    if j + 1 < n && p[j + 1] >= 0x80 && p[j + 1] <= 0x9F {
                        bytes(p + runStart, j - runStart)
                        literal("\\u00")
                        let hex = _jsonHexDigits.utf8Start
                        byte(hex[Int(p[j + 1] >> 4)])
                        byte(hex[Int(p[j + 1] & 0xF)])
                        j += 2
                        runStart = j
                    } else {
                        j += 1
                    }
                    continue
                }
                if b == 0xE2 {
                    // U+2028 / U+2029 (E2 80 A8 / A9), and the bidirectional marks,
                    // embeddings, overrides and isolates (U+200E-200F, U+202A-202E,
                    // U+2066-2069), which make text read in another order than it is.
                    if j + 2 < n, let scalar = Self.escapedE2(p[j + 1], p[j + 2]) {
                        bytes(p + runStart, j - runStart)
                        literal("\\u")
                        let hex = _jsonHexDigits.utf8Start
                        for shift in stride(from: 12, through: 0, by: -4) { byte(hex[Int(scalar >> UInt32(shift) & 0xF)]) }
                        j += 3
                        runStart = j
                    } else {
                        j += 1
                    }
                    continue
                }
                bytes(p + runStart, j - runStart)
                switch b {
                case 0x22: literal("\\\"")
                case 0x5C: literal("\\\\")
                case 0x0A: literal("\\n")
                case 0x0D: literal("\\r")
                case 0x09: literal("\\t")
                case 0x08: literal("\\b")
                case 0x0C: literal("\\f")
                default:
                    let hex = _jsonHexDigits.utf8Start
                    ensure(6)
                    base[count] = 0x5C
                    base[count + 1] = 0x75  // u
                    base[count + 2] = 0x30
                    base[count + 3] = 0x30
                    base[count + 4] = hex[Int(b >> 4)]
                    base[count + 5] = hex[Int(b & 0xF)]
                    count += 6
                }
                j += 1
                runStart = j
            }
            bytes(p + runStart, n - runStart)
            byte(0x22)
        }
    }
}

/// Orders strings by their UTF-8 bytes, i.e. by Unicode code point.
@inline(__always)
private func _jsonUTF8Less(_ lhs: String, _ rhs: String) -> Bool {
    let fast = lhs.utf8.withContiguousStorageIfAvailable { pa in
        rhs.utf8.withContiguousStorageIfAvailable { pb in
            let n = min(pa.count, pb.count)
            var k = 0
            while k < n {
                let x = pa[k]
                let y = pb[k]
                if x != y { return x < y }
                k += 1
            }
            return pa.count < pb.count
        }
    }
    if let fast, let result = fast { return result }
    return lhs.utf8.lexicographicallyPrecedes(rhs.utf8)
}

private let _jsonHexDigits: StaticString = "0123456789abcdef"

/// Byte classes as exactly 256 ASCII digits, indexed by byte value ("1" =
/// stop): string bytes the parser must look at (`"`, `\`, control
/// characters, non-ASCII).
private let _jsonParserStringStop: StaticString = """
1111111111111111111111111111111100100000000000000000000000000000\
0000000000000000000000000000100000000000000000000000000000000000\
1111111111111111111111111111111111111111111111111111111111111111\
1111111111111111111111111111111111111111111111111111111111111111
"""

/// Byte classes as exactly 256 ASCII digits, indexed by byte value ("1" =
/// stop): string bytes the serializer must look at (`"`, `\`, control
/// characters, and 0xE2, which may start U+2028/U+2029).
private let _jsonSerializerStringStop: StaticString = """
1111111111111111111111111111111100100000000000000000000000000000\
0000000000000000000000000000100000000000000000000000000000000001\
0000000000000000000000000000000000000000000000000000000000000000\
0010000000000000000000000000000000100000000000000000000000000000
"""
