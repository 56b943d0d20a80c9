import Glibc
import PurserProtocol
import PurserSandbox

/// How a run stops and the worker ends: cancel → cancelGrace → shutdown → close stdin →
/// exitGrace → SIGTERM → termGrace → SIGKILL, the CPU watch, and the reaping.
extension WorkerSession {
    /// Deadline, credits or user: tell the worker, give it `cancelGrace` to answer.
    func beginCancel(_ reason: StopReason, reason wireReason: String, message: String) {
        // Once the run has answered, a deadline or a cancel arriving late changes nothing.
        guard phase != .finished, phase != .idle, current.stop == nil, current.answer == .none else { return }
        stopRun(reason, message)
        guard phase == .running, current.answer == .none else { return beginStop() }
        write(RPCMessage.notification(method: Method.cancel, params: CancelParams(runID: current.runID, reason: wireReason).json).line())
        after(current.request.timing.cancelGraceMs) { self.beginStop() }
    }

    /// shutdown → close stdin → exitGrace → SIGTERM → termGrace → SIGKILL to the whole run.
    func beginStop() {
        guard phase == .running || phase == .initializing || phase == .idle else { return }
        phase = .stopping
        process?.snapshotTree()
        send(.shutdown, method: Method.shutdown, params: nil)
        transport?.closeStdinWhenWritten()
        after(current.request.timing.exitGraceMs) {
            self.process?.terminate()
            self.after(self.current.request.timing.termGraceMs) { self.killAndWatch() }
        }
    }

    /// Ends the worker at once: the stream is unusable or the worker never started.
    func kill(_ reason: StopReason, _ message: String) {
        guard phase != .finished else { return }
        if current.stop == nil || reason == .protocolViolation { stopRun(reason, message) }
        phase = .stopping
        transport?.closeStdin()
        killAndWatch()
    }

    /// SIGKILL to the run. The pidfd says when the worker is gone; polling as well costs
    /// nothing here and means a lost wakeup can never hang the supervisor.
    private func killAndWatch() {
        process?.killAll()
        guard !watchingExit else { return }
        watchingExit = true
        after(200, repeating: true) {
            guard let process = self.process else { return }
            if process.hasExited() { self.workerExited() } else { process.killAll() }
        }
    }

    /// Holds the run's whole tree to its CPU limit, where a cgroup counts its CPU time:
    /// RLIMIT_CPU holds each process only on its own. Checked while the worker lives, and
    /// once more when it is gone (`reap`).
    func watchCPU() {
        guard limits.cpuSeconds != nil, process?.countsTreeCPU == true else { return }
        after(Int64(VerdictClassifier.cpuCheckMs), repeating: true) {
            guard self.current.stop == nil, let used = self.process?.cpuNanoseconds() else { return }
            self.stopIfOverCPU(used) { self.kill(.cpuLimit, $0) }
        }
    }

    /// Calls `stop` with why, once the tree has used more CPU time than its limit this run.
    private func stopIfOverCPU(_ usedNanoseconds: Int64, _ stop: (String) -> Void) {
        let message = VerdictClassifier.cpuOverrun(usedNanoseconds: usedNanoseconds - current.cpuAtStart, limits: limits)
        if let message { stop(message) }
    }

    // MARK: - End

    func workerExited() {
        guard phase != .finished, !exiting, let process else { return }
        exiting = true
        guard let transport else { return drainAndReap(process) }
        transport.workerExited { self.drainAndReap(process) }
    }

    private func drainAndReap(_ process: WorkerProcess) {
        // Reaping makes the pidfd hang up (Linux 6.9+), and libdispatch must never see a
        // hangup on a source it still watches (see `WorkerProcess.stdoutHoldFD`); its
        // EPOLLONESHOT re-arm still reports EPOLLHUP. So cancel first: the cancel handler,
        // which runs after the pidfd is unregistered, reaps. What the worker left in its
        // pipes is read before, so its pid cannot be reused while we may still signal it.
        guard let exitSource else { return reap(process) }
        exitSource.cancel()
    }

    func reap(_ process: WorkerProcess) {
        guard phase != .finished else { return }
        var exit = process.reap()
        // Before the run's network namespace can go back to the pool.
        egress?.stop()
        if let tree = process.cleanUp() {
            exit.cpuMs = tree / 1_000_000
            // However the worker ended, a tree that used more than its limit gets `cpu_limit`.
            if current.stop == nil {
                stopIfOverCPU(tree) { stopRun(.cpuLimit, $0) }
            }
        }
        deniedCalls = process.deniedCalls()
        finish(exit: exit)
    }

    func finish(exit: ExitInfo?) {
        phase = .finished
        current.request.probe?.detach()
        current.timers.end()
        current.steps?.endCalls()
        transport?.end()
        exitSource?.cancel()
        directory?.removeLater()
        let answerRun = current.answerRun
        current.answerRun = nil
        answerRun?(report(exit: exit))
    }
}
