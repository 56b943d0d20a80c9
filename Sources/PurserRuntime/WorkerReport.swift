import PurserProtocol
import PurserSandbox

/// The report of a run: its verdict, usage and what the worker left to show.
extension WorkerSession {
    func report(exit: ExitInfo?) -> RunReport {
        let wall = ContinuousClock.now - current.startedAt
        let wallMs = wall.components.seconds * 1000 + wall.components.attoseconds / 1_000_000_000_000_000
        let exitInfo = exit ?? ExitInfo(exitCode: nil, signal: nil, cpuMs: 0, peakMemoryBytes: 0)
        let verdict = VerdictClassifier.classify(
            stop: current.stop, answer: current.answer, initialized: conversation.plugin != nil, exit: exitInfo, limits: limits)
        let reported = current.reported
        let gatewayCredits = current.account?.charged ?? .zero
        let toolCredits = current.request.price?.charge(answered: verdict == .ok || verdict == .error, result: current.output ?? current.runError?.json) ?? .zero
        return RunReport(
            runID: current.runID,
            pid: process?.pid,
            verdict: verdict,
            message: verdict == .ok ? nil : WorkerText.line(current.stopMessage ?? describe(verdict, exit)),
            output: verdict == .ok ? current.output : nil,
            error: verdict == .error ? current.runError : nil,
            usage: RunUsage(
                // What it declares; `Runtime.exec` has the ledger's rule charge it.
                credits: reported + gatewayCredits + toolCredits, reportedCredits: reported,
                // The worker's CPU since this run began: a kept worker's earlier runs are not this one's.
                gatewayCredits: gatewayCredits, toolCredits: toolCredits, wallMs: wallMs, cpuMs: max(0, exitInfo.cpuMs - current.cpuAtStart / 1_000_000),
                memoryPeakBytes: exitInfo.peakMemoryBytes),
            reserved: Amounts(credits: current.budget.credits, timeMs: current.request.wallTimeMs, memoryBytes: current.request.memoryBytes),
            stderrTail: WorkerText.lines(current.stderrTail.text),
            exit: exit,
            plugin: conversation.plugin,
            containment: process?.containment ?? "none",
            ledgerNode: nil,
            sandbox: sandboxReport(),
            workerRun: runsServed,
            droppedMessages: current.textBudget.dropped)
    }

    private func sandboxReport() -> SandboxReport? {
        guard let sandbox else { return nil }
        var report = SandboxReport(sandbox)
        report.deniedSyscalls = deniedCalls.names
        report.deniedCalls = deniedCalls.calls
        report.deniedCallsCapped = deniedCalls.capped
        // What the spawn really set up, not only what the host offered.
        if let process {
            let missing = Set(report.applied).intersection(SandboxLayer.cgroups).subtracting(process.attachedCgroups)
            report.applied.removeAll { missing.contains($0) }
            report.notEnforced = (report.notEnforced + missing).sorted()
        }
        return report
    }

    private func describe(_ verdict: Verdict, _ exit: ExitInfo?) -> String {
        let how = exit.map { exit in
            if let signal = exit.signal { return "was killed by signal \(signal)" }
            return "exited with status \(exit.exitCode ?? -1)"
        } ?? "ended"
        switch verdict {
        case .error: return "the worker answered the run with an error"
        case .cpuLimit: return "the worker used its CPU limit of \(limits.cpuSeconds ?? 0) s and \(how)"
        case .memoryLimit: return "the worker ran out of its \(limits.dataBytes ?? 0) bytes of memory and \(how)"
        case .startupFailed: return "the worker \(how) before answering initialize"
        default: return "the worker \(how) without answering the run"
        }
    }
}
