public import PurserProtocol
import Yams

#if canImport(Glibc)
import Glibc
#endif

/// A bad config file: which file, which line, which field, and what is wrong with it.
public struct ConfigError: Error, Sendable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    /// The field's path, as `integrations.github.rateLimit.burst`; empty for the whole file.
    public var field: String
    public var message: String

    public init(file: String, line: Int?, field: String, message: String) {
        self.file = file
        self.line = line
        self.field = field
        self.message = message
    }

    public var description: String {
        let place = line.map { "\(file):\($0)" } ?? file
        return field.isEmpty ? "\(place): \(message)" : "\(place): \(field): \(message)"
    }
}

/// One value of a YAML or JSON config file (JSON is read as YAML), with where it stands,
/// so that every error can name the file, the line and the field.
public struct ConfigValue: Sendable {
    public enum Kind: Sendable {
        case null
        /// The text, and whether it was written plain (unquoted): `1` is a number, `"1"` a string.
        case scalar(String, plain: Bool)
        case mapping([(key: String, value: ConfigValue)])
        case sequence([ConfigValue])
    }

    public let kind: Kind
    public let file: String
    public let line: Int?
    public let path: String

    /// The largest config file read: anything bigger is a mistake, not a config.
    public static let maxFileBytes = 4 << 20

    public static func load(path: String) throws(ConfigError) -> ConfigValue {
        let text = try readFile(path)
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(ConfigError) -> ConfigValue {
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw Self.describe(error, file: file, text: text)
        } catch {
            throw ConfigError(file: file, line: nil, field: "", message: "cannot parse: \(error)")
        }
        guard let node else { throw ConfigError(file: file, line: 1, field: "", message: "the file is empty") }
        var budget = ExpansionBudget(textBytes: text.utf8.count)
        return try ConfigValue(node, file: file, path: "", depth: 0, budget: &budget)
    }

    private init(kind: Kind, file: String, line: Int?, path: String) {
        self.kind = kind
        self.file = file
        self.line = line
        self.path = path
    }

    private init(_ node: Node, file: String, path: String, depth: Int, budget: inout ExpansionBudget) throws(ConfigError) {
        self.file = file
        self.line = node.mark?.line
        self.path = path
        guard depth < 64 else { throw ConfigError(file: file, line: line, field: path, message: "nested too deeply") }
        if let exceeded = budget.spend(node) { throw ConfigError(file: file, line: line, field: path, message: exceeded) }
        switch node {
        case .scalar(let scalar):
            let plain = scalar.style == .plain
            kind = plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string) ? .null : .scalar(scalar.string, plain: plain)
        case .mapping(let mapping):
            var entries: [(key: String, value: ConfigValue)] = []
            var seen: Set<String> = []
            for (key, value) in mapping {
                guard case .scalar(let name) = key else {
                    throw ConfigError(file: file, line: key.mark?.line, field: path, message: "keys must be plain strings")
                }
                let child = path.isEmpty ? name.string : "\(path).\(name.string)"
                guard seen.insert(name.string).inserted else {
                    throw ConfigError(file: file, line: key.mark?.line, field: child, message: "given twice")
                }
                entries.append((name.string, try ConfigValue(value, file: file, path: child, depth: depth + 1, budget: &budget)))
            }
            kind = .mapping(entries)
        case .sequence(let sequence):
            var items: [ConfigValue] = []
            for (index, item) in sequence.enumerated() {
                items.append(try ConfigValue(item, file: file, path: "\(path)[\(index)]", depth: depth + 1, budget: &budget))
            }
            kind = .sequence(items)
        case .alias:
            throw ConfigError(file: file, line: line, field: path, message: "aliases are not supported")
        }
    }

    // MARK: - Errors

    public func error(_ message: String) -> ConfigError {
        ConfigError(file: file, line: line, field: path, message: message)
    }

    private var what: String {
        switch kind {
        case .null: "nothing"
        case .scalar(let text, let plain): plain ? "'\(text)'" : "the string \"\(text)\""
        case .mapping: "a mapping"
        case .sequence: "a list"
        }
    }

    private func expected(_ type: String) -> ConfigError { error("expected \(type), found \(what)") }

    // MARK: - Scalars

    public var isNull: Bool {
        if case .null = kind { return true }
        return false
    }

    public func string() throws(ConfigError) -> String {
        guard case .scalar(let text, _) = kind else { throw expected("a string") }
        return text
    }

    public func nonEmptyString() throws(ConfigError) -> String {
        let text = try string()
        guard !text.isEmpty else { throw error("must not be empty") }
        return text
    }

    public func int(in range: ClosedRange<Int64> = Int64.min...Int64.max) throws(ConfigError) -> Int64 {
        guard case .scalar(let text, true) = kind, let value = Int64(text.replacingUnderscores()) else {
            throw expected("an integer")
        }
        guard range.contains(value) else { throw error("\(value) is out of range \(range.lowerBound)…\(range.upperBound)") }
        return value
    }

    public func double() throws(ConfigError) -> Double {
        guard case .scalar(let text, true) = kind, let value = Double(text.replacingUnderscores()), value.isFinite else {
            throw expected("a number")
        }
        return value
    }

    public func bool() throws(ConfigError) -> Bool {
        guard case .scalar(let text, true) = kind else { throw expected("true or false") }
        switch text {
        case "true", "True", "TRUE", "yes": return true
        case "false", "False", "FALSE", "no": return false
        default: throw expected("true or false")
        }
    }

    /// Credits as a decimal ("1.5", or 1.5): exact, in micro-credits.
    public func credits() throws(ConfigError) -> Credits {
        guard case .scalar(let text, _) = kind, let value = Credits(parsing: text) else {
            throw expected("an amount of credits such as 1.5")
        }
        guard value >= .zero else { throw error("must not be negative") }
        return value
    }

    /// "500ms", "30s", "2m", "1h"; a bare number is seconds. Milliseconds.
    public func duration() throws(ConfigError) -> Int64 {
        guard case .scalar(let text, _) = kind, let value = Units.parseDuration(text) else {
            throw expected("a duration such as 500ms, 30s or 2m")
        }
        return value
    }

    /// "64MiB", "1GiB", "512K"; a bare number is bytes.
    public func size() throws(ConfigError) -> Int64 {
        guard case .scalar(let text, _) = kind, let value = Units.parseSize(text) else {
            throw expected("a size such as 512KiB or 10MiB")
        }
        return value
    }

    /// One of `choices`.
    public func choice(_ choices: [String]) throws(ConfigError) -> String {
        let text = try string()
        guard choices.contains(text) else { throw error("'\(text)' is not one of \(choices.joined(separator: ", "))") }
        return text
    }

    // MARK: - Collections

    /// The entries of a mapping; a key outside `allowed` is an error that names it.
    public func mapping(allowed: Set<String>? = nil) throws(ConfigError) -> ConfigMapping {
        guard case .mapping(let entries) = kind else { throw expected("a mapping") }
        if let allowed {
            for (key, value) in entries where !allowed.contains(key) {
                throw ConfigError(
                    file: file, line: value.line, field: value.path,
                    message: "unknown field (expected one of \(allowed.sorted().joined(separator: ", ")))")
            }
        }
        return ConfigMapping(owner: self, entries: entries)
    }

    public func sequence() throws(ConfigError) -> [ConfigValue] {
        guard case .sequence(let items) = kind else { throw expected("a list") }
        return items
    }

    /// A list of strings, or one string of comma-separated items.
    public func strings() throws(ConfigError) -> [String] {
        if case .scalar(let text, _) = kind {
            return text.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
        }
        var result: [String] = []
        for item in try sequence() { result.append(try item.nonEmptyString()) }
        return result
    }

    /// The value as JSON, for free-form data such as a routine's input. Plain scalars
    /// that read as numbers, booleans or null become those; everything else a string.
    public var json: JSONValue {
        switch kind {
        case .null: return .null
        case .scalar(let text, let plain):
            guard plain else { return .string(text) }
            if text == "true" { return .bool(true) }
            if text == "false" { return .bool(false) }
            if let number = try? JSONParser.parse(Array(text.utf8)), case .number = number { return number }
            return .string(text)
        case .mapping(let entries):
            var object: [String: JSONValue] = [:]
            for (key, value) in entries { object[key] = value.json }
            return .object(object)
        case .sequence(let items): return .array(items.map(\.json))
        }
    }

    // MARK: - Reading files

    public static func readFile(_ path: String) throws(ConfigError) -> String {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw ConfigError(file: path, line: nil, field: "", message: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else {
                throw ConfigError(file: path, line: nil, field: "", message: "cannot read: \(String(cString: strerror(errno)))")
            }
            if count == 0 { break }
            bytes += buffer[0..<count]
            guard bytes.count <= maxFileBytes else {
                throw ConfigError(file: path, line: nil, field: "", message: "larger than \(maxFileBytes) bytes")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigError(file: path, line: nil, field: "", message: "not UTF-8 text")
        }
        return text
    }

    private static func describe(_ error: YamlError, file: String, text: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, field: "", message: "not valid YAML or JSON: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let key = duplicates.sorted().first ?? ""
            let line = secondLine(of: key, in: text, from: context.mark.line) ?? context.mark.line
            return ConfigError(file: file, line: line, field: key, message: "given twice")
        default:
            return ConfigError(file: file, line: nil, field: "", message: "not valid YAML or JSON: \(error)")
        }
    }
}

extension ConfigValue {
    /// The line where `key` is written a second time as a block mapping's key, from the
    /// mapping's first line (libyaml names only the mapping); nil when it cannot be told.
    static func secondLine(of key: String, in text: String, from first: Int) -> Int? {
        let spellings = [key + ":", "\"\(key)\":", "'\(key)':"]
        var indent: Int?
        for (index, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where index + 1 >= first {
            let trimmed = line.drop { $0 == " " || $0 == "-" }
            guard spellings.contains(where: { trimmed.hasPrefix($0) }) else { continue }
            // The same key at another indentation belongs to another mapping.
            let column = line.count - trimmed.count
            if indent == column { return index + 1 }
            if indent == nil { indent = column }
        }
        return nil
    }
}

/// A mapping's entries, in file order, with lookups that name the missing field.
public struct ConfigMapping: Sendable {
    public let owner: ConfigValue
    public let entries: [(key: String, value: ConfigValue)]

    public subscript(key: String) -> ConfigValue? {
        guard let value = entries.first(where: { $0.key == key })?.value, !value.isNull else { return nil }
        return value
    }

    public func required(_ key: String) throws(ConfigError) -> ConfigValue {
        guard let value = self[key] else {
            let field = owner.path.isEmpty ? key : "\(owner.path).\(key)"
            throw ConfigError(file: owner.file, line: owner.line, field: field, message: "missing")
        }
        return value
    }

    public var keys: [String] { entries.map(\.key) }
}

extension String {
    fileprivate func replacingUnderscores() -> String { String(filter { $0 != "_" }) }
}

/// What reading one document may cost. Aliases let a few hundred bytes stand for billions
/// of values ("billion laughs"), so values and scalar text are counted as they are
/// expanded, and reading stops at the first that passes the bound: no document can hold
/// more values than it has bytes, beside a margin for aliases used as they are meant to be.
struct ExpansionBudget {
    static let aliasMargin = 100_000
    static let maxScalarBytes = 4 * ConfigValue.maxFileBytes
    private var values: Int
    private let maxValues: Int
    private var scalarBytes = 0

    init(textBytes: Int) {
        maxValues = Self.aliasMargin + textBytes
        values = 0
    }

    /// Counts `node`; what was passed, or nil while within bounds.
    mutating func spend(_ node: Node) -> String? {
        values += 1
        if values > maxValues { return "the document expands to more than \(maxValues) values (aliases?)" }
        if case .scalar(let scalar) = node {
            scalarBytes += scalar.string.utf8.count
            if scalarBytes > Self.maxScalarBytes { return "the document expands to more than \(Self.maxScalarBytes >> 20) MiB of text (aliases?)" }
        }
        return nil
    }
}
