import ArgumentParser
import PurserProtocol
import PurserSandbox

struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Which isolation layers this host offers, and which the untrusted profile applies.",
        discussion: """
            Per layer: whether the host has it (tried for real: a throwaway child unshares each namespace,
            mounts a tmpfs and installs a filter), whether untrusted runs get it, and what to do when it
            is missing. `exec` and `run` refuse an untrusted plugin where a layer is missing, unless
            --allow-degraded. PURSER_SANDBOX_DISABLE=network,seccomp,… switches layers off.
            """)

    @Flag(help: "Print JSON.")
    var json = false

    func run() throws {
        let layers = HostLayers.detect()
        if json {
            print(JSONValue.array(layers.map { layer in
                [
                    "name": .string(layer.name), "layer": layer.layer.map { .string($0.rawValue) } ?? .null,
                    "available": .bool(layer.available), "applied": .bool(layer.applied),
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
        let missing = SandboxLevel.untrusted.wanted.subtracting(HostSupport.current.available).sorted()
        print("\nuntrusted (the default): " + (missing.isEmpty ? "every layer above applies."
            : "missing \(missing.map(\.rawValue).joined(separator: ", ")): exec and run refuse it unless --allow-degraded."))
        print("trusted (manifest `trusted: true`, or exec --trusted): cgroups, rlimits, no capabilities, no_new_privs;")
        print("no namespaces, filter or sandbox user.")
        if let files = OpenFileLimit.atStart {
            let raised = files.before < files.now ? " (raised from \(files.before) at start)" : ""
            print("this supervisor may hold \(files.now) open files\(raised); each worker \(ResourceLimits().openFiles).")
        }
        print("always: a new session, the parent-death signal (see \"supervisor death\" above), rlimits (CPU, data,")
        print("files, core), a clean environment, only fds 0-2.")
    }
}
