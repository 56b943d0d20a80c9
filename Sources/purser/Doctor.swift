import ArgumentParser
import PurserProtocol
import PurserSandbox

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Which isolation layers this host offers, and which runs get today.",
        discussion: "Per layer: whether the host has it, whether Purser applies it to runs now, and what to do when it is missing.")

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let layers = HostLayers.detect()
        if json {
            print(JSONValue.array(layers.map { layer in
                [
                    "name": .string(layer.name), "available": .bool(layer.available), "applied": .bool(layer.applied),
                    "detail": .string(layer.detail), "advice": layer.advice.map(JSONValue.string) ?? .null,
                ]
            }).serialized())
            return
        }
        for layer in layers {
            let state = layer.available ? (layer.applied ? "applied  " : "available") : "missing  "
            print("\(state)  \(layer.name.padding(toLength: 24, withPad: " ", startingAt: 0)) \(layer.detail)")
            if let advice = layer.advice { print("           → \(advice)") }
        }
        print("\nalways applied: a new session, the supervisor's death kills the run, rlimits (CPU, data, files, core),")
        print("a clean environment, only fds 0-2, a private working directory.")
    }
}
