import Glibc

/// Holds every process of one run together, so that all of them can be killed however
/// they try to leave (setsid, double fork), and so that "is anything of this run left?"
/// has an answer.
protocol RunGroup: Sendable {
    /// What the run's report says about its containment.
    var description: String { get }
    /// An open cgroup.procs the child joins before exec, or -1.
    var procsFD: Int32 { get }
    func killAll(leader: pid_t)
    func isEmpty(leader: pid_t) -> Bool
    /// Hands the group back once the run is over and the group is empty.
    func release()
}

func makeRunGroup(_ containment: Containment) throws(SandboxError) -> any RunGroup {
    if containment == .automatic, let group = try CgroupV2Group.take() {
        return group
    }
    return ProcessGroupRunGroup(limits: CgroupV2Group.controllers.isEmpty ? nil : try CgroupV2Group.take())
}
