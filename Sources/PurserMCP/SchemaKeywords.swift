import PurserProtocol

/// The keywords of `SchemaCheck` that look at one value only: its type, its size, its bounds.
enum SchemaKeywords {
    /// Known in strict mode, and not checked.
    static let ignoredInStrict: Set<String> = []

    /// Applies `keyword` if it is one of these; false if it is not.
    static func checkShape(
        _ keyword: String, _ argument: JSONValue, _ value: JSONValue, _ path: String, _ problems: inout [String]
    ) -> Bool {
        switch keyword {
        case "type":
            let types = argument.arrayValue?.compactMap(\.stringValue) ?? [argument.stringValue ?? ""]
            if !types.contains(where: { matches(value, type: $0) }) { problems.append("\(path): expected \(types.joined(separator: " or "))") }
        case "required":
            guard case .object(let object) = value else { return true }
            for key in argument.arrayValue?.compactMap(\.stringValue) ?? [] where object[key] == nil {
                problems.append("\(path).\(key): required")
            }
        case "enum":
            if !(argument.arrayValue ?? []).contains(value) { problems.append("\(path): not one of \(argument.serialized())") }
        case "const":
            if value != argument { problems.append("\(path): must be \(argument.serialized())") }
        case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
            bound(keyword, argument, value, path, &problems)
        case "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties":
            size(keyword, argument, value, path, &problems)
        default:
            return false
        }
        return true
    }

    private static func bound(_ keyword: String, _ argument: JSONValue, _ value: JSONValue, _ path: String, _ problems: inout [String]) {
        guard let number = value.numberValue?.double, let limit = argument.numberValue?.double else { return }
        let fails = switch keyword {
        case "minimum": number < limit
        case "maximum": number > limit
        case "exclusiveMinimum": number <= limit
        default: number >= limit
        }
        if fails { problems.append("\(path): \(keyword) is \(argument.serialized())") }
    }

    private static func size(_ keyword: String, _ argument: JSONValue, _ value: JSONValue, _ path: String, _ problems: inout [String]) {
        guard let limit = argument.numberValue?.int64 else { return }
        let count: Int? = switch (keyword, value) {
        case ("minLength", .string(let string)), ("maxLength", .string(let string)): string.unicodeScalars.count
        case ("minItems", .array(let items)), ("maxItems", .array(let items)): items.count
        case ("minProperties", .object(let members)), ("maxProperties", .object(let members)): members.count
        default: nil
        }
        guard let count else { return }
        if keyword.hasPrefix("min") ? count < limit : count > limit {
            problems.append("\(path): \(keyword) is \(limit), it has \(count)")
        }
    }

    static func matches(_ value: JSONValue, type: String) -> Bool {
        switch (type, value) {
        case ("null", .null), ("boolean", .bool), ("number", .number), ("string", .string), ("array", .array),
            ("object", .object):
            return true
        case ("integer", .number(let number)): return number.int64 != nil || number.double.rounded() == number.double
        default: return false
        }
    }
}
