public import PurserProtocol

/// A JSON Schema (2020-12) check of the keywords people write for tool inputs and for
/// Purser's own schemas. Two modes:
/// - `strict` (Purser's own schemas, in tests): an unknown keyword is an error, so a schema
///   cannot silently check less than it says;
/// - `tolerant` (an MCP server's `inputSchema`, which the server chose): unknown keywords
///   and `format` are ignored, `pattern` is checked only with a matcher, and nesting and
///   `$ref` chains stop at `maxDepth`, so a hostile schema cannot make the check loop.
/// A tool's input is checked for the user's sake (a clear error before anything is
/// reserved); the server still sees only what passed, and is believed no more for it.
public struct SchemaCheck: Sendable {
    public enum Mode: Sendable { case strict, tolerant }

    let root: JSONValue
    let entry: JSONValue
    let mode: Mode
    /// Whether `string` matches `pattern` (ECMA-262; unanchored); nil: the pattern is bad.
    public var matchPattern: (@Sendable (_ pattern: String, _ string: String) -> Bool?)?
    public static let maxDepth = 32
    /// At most this many problems are kept.
    public static let maxProblems = 20

    /// `entry` is checked; `$ref`s resolve in `root` (a document holding it, or itself).
    public init(_ entry: JSONValue, root: JSONValue? = nil, mode: Mode) {
        self.entry = entry
        self.root = root ?? entry
        self.mode = mode
    }

    /// The problems found, each with the path of the value at fault (`$.a[2].b`); empty when valid.
    public func problems(_ value: JSONValue) -> [String] {
        var found: [String] = []
        check(value, against: entry, at: "$", depth: 0, into: &found)
        return Array(found.prefix(Self.maxProblems))
    }

    /// A local JSON pointer (`#/a/b`, `~0` and `~1` unescaped).
    public static func resolve(_ pointer: String, in document: JSONValue) -> JSONValue? {
        guard pointer == "#" || pointer.hasPrefix("#/") else { return nil }
        var value: JSONValue? = document
        for key in pointer.dropFirst(2).split(separator: "/", omittingEmptySubsequences: false) where pointer != "#" {
            let name = key.replacing("~1", with: "/").replacing("~0", with: "~")
            if let index = Int(name), let array = value?.arrayValue {
                value = index >= 0 && index < array.count ? array[index] : nil
            } else {
                value = value?[String(name)]
            }
        }
        return value
    }

    private static let annotations: Set<String> = [
        "$schema", "$id", "title", "description", "examples", "default", "$defs", "definitions", "$comment",
    ]

    func check(_ value: JSONValue, against schema: JSONValue, at path: String, depth: Int, into problems: inout [String]) {
        guard problems.count < Self.maxProblems else { return }
        guard depth < Self.maxDepth else { return problems.append("\(path): the schema nests deeper than \(Self.maxDepth)") }
        if case .bool(let allowed) = schema {
            if !allowed { problems.append("\(path): not allowed") }
            return
        }
        guard case .object(let keywords) = schema else { return problems.append("\(path): schema is not an object") }
        for (keyword, argument) in keywords.sorted(by: { $0.key < $1.key }) where !Self.annotations.contains(keyword) {
            apply(keyword, argument, keywords, value, path, depth + 1, &problems)
        }
    }

    private func apply(
        _ keyword: String, _ argument: JSONValue, _ keywords: [String: JSONValue], _ value: JSONValue, _ path: String,
        _ depth: Int, _ problems: inout [String]
    ) {
        if SchemaKeywords.checkShape(keyword, argument, value, path, &problems) { return }
        switch keyword {
        case "properties":
            guard case .object(let object) = value, case .object(let properties) = argument else { return }
            for (key, schema) in properties.sorted(by: { $0.key < $1.key }) {
                if let item = object[key] { check(item, against: schema, at: "\(path).\(key)", depth: depth, into: &problems) }
            }
        case "additionalProperties":
            // A boolean or a schema, applied to every member `properties` does not name.
            guard case .object(let object) = value else { return }
            let known = keywords["properties"]?.objectValue ?? [:]
            for (key, item) in object.sorted(by: { $0.key < $1.key }) where known[key] == nil {
                check(item, against: argument, at: "\(path).\(key)", depth: depth, into: &problems)
            }
        case "items":
            for (index, item) in (value.arrayValue ?? []).enumerated() {
                check(item, against: argument, at: "\(path)[\(index)]", depth: depth, into: &problems)
            }
        case "propertyNames":
            guard case .object(let object) = value else { return }
            for key in object.keys.sorted() {
                check(.string(key), against: argument, at: "\(path) name \(JSONValue.string(key).serialized())", depth: depth, into: &problems)
            }
        case "pattern":
            guard let string = value.stringValue, let source = argument.stringValue else { return }
            guard let matchPattern else {
                if mode == .strict { problems.append("\(path): no pattern matcher for \(source)") }
                return
            }
            switch matchPattern(source, string) {
            case .some(true): break
            case .some(false): problems.append("\(path): does not match \(source)")
            case .none: if mode == .strict { problems.append("\(path): bad pattern \(argument.serialized())") }
            }
        case "allOf", "oneOf", "anyOf":
            combine(keyword, argument.arrayValue ?? [], value, path, depth, &problems)
        case "not":
            var inner: [String] = []
            check(value, against: argument, at: path, depth: depth, into: &inner)
            if inner.isEmpty { problems.append("\(path): matches a forbidden schema") }
        case "$ref":
            guard let ref = argument.stringValue, let target = Self.resolve(ref, in: root) else {
                return problems.append("\(path): unresolvable $ref \(argument.serialized())")
            }
            check(value, against: target, at: path, depth: depth, into: &problems)
        default:
            if mode == .strict, !SchemaKeywords.ignoredInStrict.contains(keyword) {
                problems.append("\(path): validator does not know keyword \(keyword)")
            }
        }
    }

    private func combine(
        _ keyword: String, _ schemas: [JSONValue], _ value: JSONValue, _ path: String, _ depth: Int, _ problems: inout [String]
    ) {
        var failures: [[String]] = []
        for schema in schemas {
            var inner: [String] = []
            check(value, against: schema, at: path, depth: depth, into: &inner)
            if !inner.isEmpty { failures.append(inner) }
        }
        let passing = schemas.count - failures.count
        switch keyword {
        case "allOf": if let first = failures.first { problems += first }
        case "oneOf": if passing != 1 { problems.append("\(path): matches \(passing) of oneOf's \(schemas.count) schemas, not 1") }
        default: if passing == 0 { problems.append("\(path): matches none of anyOf's \(schemas.count) schemas") }
        }
    }
}
