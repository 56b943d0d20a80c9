import Foundation
public import PurserProtocol

/// The subset of JSON Schema 2020-12 that protocol/schemas uses, and nothing more:
/// an unknown keyword is an error, so a schema cannot silently check less than it says.
public struct SchemaValidator {
    let root: JSONValue
    /// The schema `validate` applies: the root, or one inside it (an OpenAPI document's).
    let entry: JSONValue

    public init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        root = try JSONParser.parse([UInt8](data))
        entry = root
    }

    /// The schema at `pointer` (`#/components/schemas/Error`) of `document`, whose `$ref`s point into it.
    public init(document: JSONValue, pointer: String) throws {
        root = document
        guard let schema = Self.resolve(pointer, in: document) else { throw SchemaError(message: "no schema at \(pointer)") }
        entry = schema
    }

    /// Returns the problems found, empty when `value` is valid.
    public func validate(_ value: JSONValue) -> [String] {
        var problems: [String] = []
        check(value, against: entry, at: "$", into: &problems)
        return problems
    }

    /// A local JSON pointer (`#/a/b`), without `~` escapes (none of the schemas need them).
    static func resolve(_ pointer: String, in document: JSONValue) -> JSONValue? {
        guard pointer.hasPrefix("#/") else { return nil }
        var value: JSONValue? = document
        for key in pointer.dropFirst(2).split(separator: "/") { value = value?[String(key)] }
        return value
    }

    private static let annotations: Set<String> = ["$schema", "$id", "title", "description", "examples", "default", "$defs"]

    public struct SchemaError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    private func check(_ value: JSONValue, against schema: JSONValue, at path: String, into problems: inout [String]) {
        if case .bool(let allowed) = schema {
            if !allowed { problems.append("\(path): not allowed") }
            return
        }
        guard case .object(let keywords) = schema else { return problems.append("\(path): schema is not an object") }
        for (keyword, argument) in keywords where !Self.annotations.contains(keyword) {
            apply(keyword, argument, keywords, value, path, &problems)
        }
    }

    private func apply(
        _ keyword: String, _ argument: JSONValue, _ keywords: [String: JSONValue], _ value: JSONValue, _ path: String,
        _ problems: inout [String]
    ) {
        switch keyword {
        case "type":
            let types = argument.arrayValue?.compactMap(\.stringValue) ?? [argument.stringValue ?? ""]
            if !types.contains(where: { Self.matches(value, type: $0) }) { problems.append("\(path): expected \(types)") }
        case "properties":
            guard case .object(let object) = value, case .object(let properties) = argument else { return }
            for (key, schema) in properties { if let item = object[key] { check(item, against: schema, at: "\(path).\(key)", into: &problems) } }
        case "required":
            guard case .object(let object) = value else { return }
            for key in argument.arrayValue?.compactMap(\.stringValue) ?? [] where object[key] == nil {
                problems.append("\(path).\(key): required")
            }
        case "additionalProperties":
            // A boolean or a schema, applied to every member `properties` does not name.
            guard case .object(let object) = value else { return }
            let known = keywords["properties"]?.objectValue ?? [:]
            for (key, item) in object where known[key] == nil { check(item, against: argument, at: "\(path).\(key)", into: &problems) }
        case "items":
            for (index, item) in (value.arrayValue ?? []).enumerated() { check(item, against: argument, at: "\(path)[\(index)]", into: &problems) }
        case "enum":
            if !(argument.arrayValue ?? []).contains(value) { problems.append("\(path): not one of \(argument.serialized())") }
        case "const":
            if value != argument { problems.append("\(path): must be \(argument.serialized())") }
        case "minimum":
            if let number = value.numberValue, let bound = argument.numberValue, number.double < bound.double { problems.append("\(path): below \(bound)") }
        case "maximum":
            if let number = value.numberValue, let bound = argument.numberValue, number.double > bound.double { problems.append("\(path): above \(bound)") }
        case "exclusiveMinimum":
            if let number = value.numberValue, let bound = argument.numberValue, number.double <= bound.double { problems.append("\(path): not above \(bound)") }
        case "minProperties":
            if case .object(let object) = value, let bound = argument.numberValue?.int64, object.count < bound { problems.append("\(path): too few members") }
        case "propertyNames":
            guard case .object(let object) = value else { return }
            for key in object.keys { check(.string(key), against: argument, at: "\(path) name \(JSONValue.string(key).serialized())", into: &problems) }
        case "pattern":
            // ECMA-262 in the spec; the patterns used keep to what ICU reads the same way. Not anchored.
            guard let string = value.stringValue else { return }
            guard let source = argument.stringValue, let regex = try? NSRegularExpression(pattern: source) else {
                return problems.append("\(path): bad pattern \(argument.serialized())")
            }
            let range = NSRange(location: 0, length: (string as NSString).length)
            if regex.firstMatch(in: string, range: range) == nil { problems.append("\(path): does not match \(source)") }
        case "minLength":
            if let string = value.stringValue, let bound = argument.numberValue?.int64, string.unicodeScalars.count < bound { problems.append("\(path): too short") }
        case "oneOf", "anyOf":
            let passing = (argument.arrayValue ?? []).filter { schema in
                var inner: [String] = []
                check(value, against: schema, at: path, into: &inner)
                return inner.isEmpty
            }.count
            if keyword == "oneOf" ? passing != 1 : passing == 0 { problems.append("\(path): \(keyword) matched \(passing)") }
        case "not":
            var inner: [String] = []
            check(value, against: argument, at: path, into: &inner)
            if inner.isEmpty { problems.append("\(path): matches a forbidden schema") }
        case "$ref":
            guard let ref = argument.stringValue, let target = Self.resolve(ref, in: root) else { return problems.append("\(path): unresolvable $ref \(argument.serialized())") }
            check(value, against: target, at: path, into: &problems)
        default:
            problems.append("\(path): validator does not know keyword \(keyword)")
        }
    }

    private static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("number", .number), ("string", .string), ("array", .array),
            ("object", .object):
            return true
        case ("integer", .number(let number)): return number.int64 != nil
        default: return false
        }
    }
}
