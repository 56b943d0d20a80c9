import PurserProtocol

/// §5.1: `initialize` answered at once, and a version the worker does not speak refused.
struct HandshakeCheck: WorkerCheck {
    let name = "handshake"
    let section = SpecSection.initialize
    let summary = "initialize answered within the startup timeout: protocolVersion 1, plugin name and version, capabilities"

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let answer = try worker.ask(Method.initialize, worker.initializeParams().json, within: worker.options.startupMs)
        let info = try worker.initialized(answer)
        guard answer.raw["result"]?["capabilities"]?.objectValue != nil else {
            throw CheckFailure("result.capabilities is required, an object (it may be {})")
        }
        let capabilities = info.capabilities.filter { $0.value == .bool(true) }.keys.sorted()
        return .pass(
            "plugin \(WorkerText.line(info.pluginName, limit: 80)) \(WorkerText.line(info.pluginVersion, limit: 40)); "
                + "capabilities: \(capabilities.isEmpty ? "none" : capabilities.joined(separator: ", "))")
    }
}

struct VersionCheck: WorkerCheck {
    static let unspoken: Int64 = 2

    let name = "version"
    let section = SpecSection.initialize
    let summary = "initialize asking for protocol version 2 answered -32001 with data.supported"

    func run(_ worker: WorkerConnection) throws(CheckFailure) -> CheckResult {
        let what = "initialize for version \(Self.unspoken)"
        let answer = try worker.ask(Method.initialize, worker.initializeParams(version: Self.unspoken).json, within: worker.options.startupMs, what)
        let error = try answer.error(
            ErrorCode.unsupportedProtocolVersion, what, wants: "a worker that does not speak it answers -32001")
        let supported = error.data?["supported"]?.arrayValue ?? []
        let versions = supported.compactMap { $0.numberValue?.int64 }.filter { $0 >= 1 }
        guard !versions.isEmpty, versions.count == supported.count else {
            throw CheckFailure("error.data.supported must list the versions it speaks, integers ≥ 1")
        }
        return .pass("refused version \(Self.unspoken) with -32001, supported: \(versions.map(String.init).joined(separator: ", "))")
    }
}
