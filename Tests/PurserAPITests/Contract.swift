import Foundation
import PurserConfig
import PurserProtocol
import PurserTestSupport
import Testing

/// protocol/openapi.yaml, read as the tests' client reads it: its routes and its schemas.
enum Contract {
    static let document: JSONValue = {
        do {
            return try ConfigValue.load(path: Fixtures.file("protocol/openapi.yaml")).json
        } catch {
            fatalError("protocol/openapi.yaml: \(error)")
        }
    }()

    /// Every `METHOD /path` the document describes.
    static var routes: Set<String> {
        var routes: Set<String> = []
        for (path, item) in document["paths"]?.objectValue ?? [:] {
            for method in (item.objectValue ?? [:]).keys { routes.insert("\(method.uppercased()) \(path)") }
        }
        return routes
    }

    /// The problems of `answer` against the schema the document gives for its status, on `route`.
    static func problems(_ answer: HTTPAnswer, _ method: String, _ path: String) -> [String] {
        let pointer = "#/paths/\(path.replacingOccurrences(of: "/", with: "~1"))/\(method.lowercased())/responses/\(answer.status)"
        guard var response = resolve(pointer) else { return ["\(method) \(path): status \(answer.status) is not documented"] }
        if let ref = response["$ref"]?.stringValue, let target = resolve(ref) { response = target }
        guard let schema = response["content"]?["application/json"]?["schema"] else {
            return ["\(method) \(path) \(answer.status): no JSON schema"]
        }
        do {
            let validator = try SchemaValidator(document: .object(["s": schema, "components": document["components"] ?? .null]), pointer: "#/s")
            return validator.validate(answer.json).map { "\(method) \(path) \(answer.status): \($0)" }
        } catch {
            return ["\(error)"]
        }
    }

    /// A pointer into the document, with `~1` for a `/` in a key (the paths' names).
    private static func resolve(_ pointer: String) -> JSONValue? {
        var value: JSONValue? = document
        for key in pointer.dropFirst(2).split(separator: "/") { value = value?[key.replacingOccurrences(of: "~1", with: "/")] }
        return value
    }
}
