public import PurserSandbox

/// The `purser` command's exit codes: 0 only for ok, one code per verdict otherwise.
public enum ExitCodes {
    public static let badInput: Int32 = 2
    /// The host lacks a sandbox layer the plugin's level needs (see `purser doctor`); nothing ran.
    public static let sandboxUnavailable: Int32 = 3
    /// `purser run`: the swarm ran, and at least one routine did not end ok.
    public static let swarmFailed: Int32 = 21
    /// `purser run`: the team could not grant the swarm's reservation; nothing ran.
    public static let swarmDenied: Int32 = 19

    public static func code(for verdict: Verdict) -> Int32 {
        switch verdict {
        case .ok: 0
        case .error: 10
        case .crashed: 11
        case .timeout: 12
        case .cpuLimit: 13
        case .memoryLimit: 14
        case .creditsExhausted: 15
        case .protocolViolation: 16
        case .startupFailed: 17
        case .cancelled: 18
        case .denied: 19
        case .preempted: 20
        }
    }
}
