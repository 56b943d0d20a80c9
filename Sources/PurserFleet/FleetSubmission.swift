import PurserConfig
public import PurserLedger
import PurserProtocol
public import PurserRuntime

/// `purser submit`: a job file checked as `purser run` checks it, then written to the
/// queue whole (the file's text, which every host reads the same way) with its routines
/// and their order. Nothing is written if anything is wrong.
public enum FleetSubmission {
    public static func submit(path: String, priority: Int64?, runtime: Runtime, fleet: any FleetStore) throws(RuntimeError) -> String {
        let source: String
        do {
            source = try ConfigValue.readFile(path)
        } catch {
            throw RuntimeError(code: .invalidRequest, message: error.description)
        }
        return try submit(source: source, file: path, priority: priority, runtime: runtime, fleet: fleet)
    }

    /// The same for a job file's text already read (`file` names it in errors): the HTTP API's submit.
    public static func submit(
        source: String, file path: String, priority: Int64?, runtime: Runtime, fleet: any FleetStore
    ) throws(RuntimeError) -> String {
        let id = "s-" + String(Runtime.makeRunID().dropFirst(2))
        // The same reading and checks as a host's: the job, its registered plugins, this host's sandbox.
        let swarm = try FleetSwarm(id: id, file: path, source: source, runtime: runtime)
        let job = swarm.job
        let submitted = SubmittedSwarm(
            id: id, team: job.team.name, name: job.swarm.name, priority: priority ?? job.swarm.priority,
            concurrency: job.swarm.concurrency, file: path, source: source,
            routines: job.routines.map {
                SubmittedRoutine(
                    name: $0.name, priority: $0.priority, after: $0.after, memoryBytes: swarm.memoryBytes($0.name),
                    approvalTools: swarm.approvalTools($0.name), approvalTimeoutMs: job.swarm.approvalTimeoutMs)
            })
        do throws(LedgerError) {
            try fleet.submit(submitted)
        } catch {
            throw RuntimeError(error)
        }
        return id
    }
}
