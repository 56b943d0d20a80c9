import PurserProtocol
import PurserSandbox

/// A kept worker: a run it answered cleanly leaves it idle, and the next run is sent to it
/// with a `RunState` of its own.
extension WorkerSession {
    /// Sends an idle worker its next run; nil if the worker is no longer idle (it exited or
    /// broke the protocol meanwhile), and the caller starts a new one.
    func runAgain(
        request: RunRequest, runID: String, budget: Budget, account: RunAccount?, steps: StepLauncher?,
        onEvent: @escaping @Sendable (RunEvent) -> Void
    ) async -> RunReport? {
        await withCheckedContinuation { (continuation: CheckedContinuation<RunReport?, Never>) in
            queue.async {
                // Exited but not yet seen to (its pidfd's event may still be on its way).
                guard self.phase == .idle, let process = self.process, !process.hasExited() else {
                    return continuation.resume(returning: nil)
                }
                process.resetMemoryPeak()
                self.current = RunState(
                    request: request, runID: runID, budget: budget, account: account, steps: steps, onEvent: onEvent,
                    timers: RunTimers(queue: self.queue), cpuAtStart: process.cpuNanoseconds() ?? 0,
                    answerRun: { continuation.resume(returning: $0) })
                self.phase = .running
                self.attachProbe(process)
                self.sendRun()
            }
        }
    }

    /// Shuts an idle worker down and waits until it is gone; its directory and groups are
    /// released as after any run.
    func retire() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                guard self.phase != .finished else { return continuation.resume() }
                self.current.answerRun = { _ in continuation.resume() }
                self.beginStop()
            }
        }
    }

    /// Answered cleanly, by a worker that takes further runs, with none of its calls left
    /// in flight (their charges belong to this run, which is settled once it returns).
    var mayServeAgain: Bool {
        reusable && current.stop == nil && conversation.plugin?.capabilities["sequentialRuns"]?.boolValue == true
            && calls?.noneInFlight == true && transport?.pendingOutput == 0
    }

    /// Reports the run and keeps the worker for the next one; its timers end with the run.
    func becomeIdle() {
        current.timers.end()
        // For what the idle worker may still need: the timers of its shutdown.
        current.timers = RunTimers(queue: queue)
        phase = .idle
        current.request.probe?.detach()
        let cpu = (process?.cpuNanoseconds() ?? 0) / 1_000_000
        let usage = ExitInfo(exitCode: nil, signal: nil, cpuMs: cpu, peakMemoryBytes: process?.memoryPeakBytes() ?? 0)
        var report = report(exit: usage)
        report.exit = nil
        let answerRun = current.answerRun
        current.answerRun = nil
        answerRun?(report)
    }
}
