import Dispatch
import PurserProtocol
import PurserSandbox

/// Everything that belongs to one run of a worker. A session makes a new one for each run
/// (its first with the session, each further one in `runAgain`), so a kept worker's next
/// run cannot inherit any of it by omission.
struct RunState {
    // What the run was asked.
    let request: RunRequest
    let runID: String
    let budget: Budget
    let account: RunAccount?
    let steps: StepLauncher?
    let onEvent: @Sendable (RunEvent) -> Void
    /// Answers whoever waits for this run (or, once the worker is idle, for its end).
    var answerRun: ((RunReport) -> Void)?
    var timers: RunTimers
    var startedAt = ContinuousClock.now
    /// The worker's CPU time when this run began (nanoseconds; 0 for its first run).
    let cpuAtStart: Int64

    // What it came to.
    var stop: StopReason?
    var stopMessage: String?
    var answer = RunAnswer.none
    var output: JSONValue?
    var runError: RPCError?
    var reportedCredits = Credits.zero
    var resultCredits: Credits?
    var stderrTail = StderrTail()
    var textBudget = WorkerTextBudget()

    init(
        request: RunRequest, runID: String, budget: Budget, account: RunAccount?, steps: StepLauncher?,
        onEvent: @escaping @Sendable (RunEvent) -> Void, timers: RunTimers, cpuAtStart: Int64 = 0,
        answerRun: ((RunReport) -> Void)? = nil
    ) {
        self.request = request
        self.runID = runID
        self.budget = budget
        self.account = account
        self.steps = steps
        self.onEvent = onEvent
        self.timers = timers
        self.cpuAtStart = cpuAtStart
        self.answerRun = answerRun
    }

    /// The credits the worker reported for this run: its running total or its answer's, whichever is more.
    var reported: Credits { max(reportedCredits, resultCredits ?? .zero) }
}

/// The timers of one run, on the session's queue. Once they are ended (the run is answered
/// or the worker is gone) none of them acts, even one whose event was already on its way.
final class RunTimers: @unchecked Sendable {
    private let queue: DispatchQueue
    private var sources: [any DispatchSourceTimer] = []
    private var ended = false

    init(queue: DispatchQueue) {
        self.queue = queue
    }

    func after(_ milliseconds: Int64, repeating: Bool = false, _ body: @escaping () -> Void) {
        let timer = DispatchSource.makeTimerSource(queue: queue)
        let interval = DispatchTimeInterval.milliseconds(Int(clamping: milliseconds))
        timer.schedule(deadline: .now() + interval, repeating: repeating ? interval : .never)
        timer.setEventHandler {
            guard !self.ended else { return }
            body()
        }
        timer.activate()
        sources.append(timer)
    }

    func end() {
        ended = true
        for timer in sources { timer.cancel() }
        sources = []
    }
}
