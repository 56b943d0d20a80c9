import Glibc
public import PurserSandbox

/// Workers started exactly as a run of `request` starts them (its sandbox level resolved on
/// this host, the clean environment, rlimits, cgroups and working directory), for a caller
/// that speaks the protocol to them itself: `purser conformance`. Nothing is reserved.
public struct WorkerLaunch: Sendable {
    public let plan: SandboxPlan
    /// What the caller should tell its user once: a downgraded sandbox, a missing watchdog.
    public let notices: [String]
    let runtime: Runtime
    let request: RunRequest

    /// Starts one worker; each gets a working directory of its own.
    public func spawn() throws(RuntimeError) -> LaunchedWorker {
        let directory = try runtime.runDirectory(plan)
        do {
            let process = try Spawner.spawn(runtime.profile(request, directory: directory?.path, plan: plan))
            return LaunchedWorker(process: process, directory: directory)
        } catch {
            directory?.removeLater()
            throw RuntimeError(code: .invalidRequest, message: error.description)
        }
    }
}

/// One started worker. The caller reads its pipes, watches its pidfd and reaps it; `end`
/// then removes what is left of it.
public struct LaunchedWorker: Sendable {
    public let process: WorkerProcess
    let directory: RunDirectory?

    /// After the worker was reaped: kills what is left of its run, releases its groups,
    /// removes its working directory.
    public func end() {
        process.cleanUp()
        directory?.removeLater()
    }
}

extension Runtime {
    /// Checks `request` and resolves its sandbox level once, for workers started later.
    public func launch(_ request: RunRequest) throws(RuntimeError) -> WorkerLaunch {
        let request = try validated(request)
        let plan = try sandboxPlan(request)
        var notices: [String] = []
        if !plan.missing.isEmpty {
            notices.append("sandbox downgraded: \(plan.missing.map(\.rawValue).joined(separator: ", ")) not enforced")
        }
        if let problem = Janitor.startWatchdog() {
            notices.append("no watchdog (\(problem)): if this supervisor is killed, its trusted workers' escaped processes live until the next start")
        }
        return WorkerLaunch(plan: plan, notices: notices, runtime: self, request: request)
    }
}
