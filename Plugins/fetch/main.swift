import PurserPluginKit

// Calls one integration through the supervisor's gateway and returns what came back.
// Input: {"integration": "...", "path": "/...", "method": "GET", "query": {...},
//         "headers": {...}, "body": "...", "repeat": 1}
Plugin.serve(name: "fetch", version: "0.1.0") { input, context in
    guard let integration = input["integration"]?.stringValue, let path = input["path"]?.stringValue else {
        throw PluginError.invalidInput("fetch needs integration and path")
    }
    var call = GatewayCallParams(integration: integration, method: input["method"]?.stringValue ?? "GET", path: path)
    call.query = input["query"]?.objectValue?.compactMapValues(\.stringValue) ?? [:]
    call.headers = input["headers"]?.objectValue?.compactMapValues(\.stringValue) ?? [:]
    call.body = Array((input["body"]?.stringValue ?? "").utf8)
    let times = max(1, Int(input["repeat"]?.numberValue?.int64 ?? 1))
    var answers: [JSONValue] = []
    for _ in 0..<times {
        do {
            let result = try await context.gateway(call)
            answers.append([
                "status": .number(JSONNumber(result.status)), "credits": result.credits.json, "cached": .bool(result.cached),
                "body": .string(String(decoding: result.body, as: UTF8.self)),
                "headers": .object(result.headers.mapValues { .string($0) }),
            ])
        } catch let error as RPCError {
            answers.append(["error": .string(error.message), "reason": error.data?["reason"] ?? .null])
        }
    }
    return times == 1 ? answers[0] : ["calls": .array(answers)]
}
