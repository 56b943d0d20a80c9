import Foundation
public import PurserMCP
public import PurserProtocol

/// Purser's own schemas (protocol/schemas, the OpenAPI document) checked strictly: an unknown
/// keyword is an error, so a schema cannot silently check less than it says. The checking is
/// `SchemaCheck`'s, the one MCP tools' inputs go through (there tolerant).
public struct SchemaValidator {
    let check: SchemaCheck

    public init(path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let root = try JSONParser.parse([UInt8](data))
        check = Self.strict(root, root: root)
    }

    /// The schema at `pointer` (`#/components/schemas/Error`) of `document`, whose `$ref`s point into it.
    public init(document: JSONValue, pointer: String) throws {
        guard let schema = SchemaCheck.resolve(pointer, in: document) else { throw SchemaError(message: "no schema at \(pointer)") }
        check = Self.strict(schema, root: document)
    }

    /// Returns the problems found, empty when `value` is valid.
    public func validate(_ value: JSONValue) -> [String] { check.problems(value) }

    public struct SchemaError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    private static func strict(_ schema: JSONValue, root: JSONValue) -> SchemaCheck {
        var check = SchemaCheck(schema, root: root, mode: .strict)
        // ECMA-262 in the spec; the patterns used keep to what ICU reads the same way.
        check.matchPattern = { pattern, string in
            guard let regex = try? NSRegularExpression(pattern: pattern) else { return nil }
            return regex.firstMatch(in: string, range: NSRange(location: 0, length: (string as NSString).length)) != nil
        }
        return check
    }
}
