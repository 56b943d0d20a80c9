public import PurserProtocol

/// What the checker sends and how long it waits. The waits are the SPEC's defaults (§8);
/// an answer the SPEC wants "at once" gets `answerMs`.
public struct ConformanceOptions: Sendable {
    /// The input of the checker's runs; a worker that cannot use it may answer with an error.
    public var input: JSONValue = ["text": "hello, conformance"]
    public var credits = Credits(whole: 100)
    /// Each run's wall time: its deadline, and how long the checker waits for its answer.
    public var runTimeMs: Int64 = 30_000
    public var memoryBytes: Int64 = 512 << 20
    /// Sent in `initialize`; a longer line from the worker fails `line-limit`.
    public var maxLineBytes = defaultMaxLineBytes
    /// The name sent as `worker.plugin`.
    public var pluginName = "worker"
    public var startupMs: Int64 = 10_000
    public var cancelGraceMs: Int64 = 1_000
    public var exitGraceMs: Int64 = 1_000
    public var answerMs: Int64 = 5_000

    public init() {}
}
