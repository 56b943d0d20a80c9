import PurserPluginKit

// Hands its work to another registered plugin as a nested routine (a step), paid from its
// own reservation: {"plugin": "wordcount", "input": {...}, "credits": 1}.
Plugin.serve(name: "delegate", version: "1.0.0") { input, context in
    guard let plugin = input["plugin"]?.stringValue else { throw PluginError.invalidInput("delegate needs plugin") }
    let credits = try Credits(input["credits"]?.numberValue ?? JSONNumber(1), field: "credits")
    let step = try await context.routine(RoutineCallParams(plugin: plugin, input: input["input"] ?? .null, credits: credits))
    return ["delegatedTo": .string(plugin), "result": step.output, "stepCredits": step.credits.json]
}
