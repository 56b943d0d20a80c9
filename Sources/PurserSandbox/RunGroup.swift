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

/// A step's run group is of its caller's kind, and a cgroup one is inside its caller's.
func makeRunGroup(_ containment: Containment, parent: (any RunGroup)?) throws(SandboxError) -> any RunGroup {
    if let parent = parent as? CgroupV2Group, let group = try CgroupV2Group.take(parent: parent) { return group }
    if containment == .automatic, parent == nil, let group = try CgroupV2Group.take() {
        return group
    }
    return ProcessGroupRunGroup(limits: CgroupV2Group.controllers.isEmpty ? nil : try CgroupV2Group.take())
}

/// A run's groups: the run group that holds its processes together, and the memory, pids
/// and CPU groups that limit and count them. A step's are made inside its caller's (see
/// `SandboxProfile.parentGroups`), so that its memory, processes and CPU time count against
/// the caller's limits as well as its own: a run's limits hold over its whole tree.
public struct RunCgroups: Sendable {
    let group: any RunGroup
    let memory: MemoryCgroup?
    let pids: PidsCgroup?
    let cpu: CpuCgroup?

    init(_ profile: SandboxProfile) throws(SandboxError) {
        // Before the first run's groups exist: from then on, this supervisor's death kills them.
        Watchdog.start()
        let parent = profile.parentGroups
        let group = try makeRunGroup(profile.containment, parent: parent?.group)
        self.group = group
        memory = MemoryCgroup.take(limitBytes: profile.limits.memoryBytes, runGroup: group, parent: parent?.memory)
        pids = profile.limits.processes.flatMap { PidsCgroup.take(limit: $0, runGroup: group, parent: parent?.pids) }
        cpu = CpuCgroup.take(runGroup: group, parent: parent?.cpu)
    }

    /// The fds of the `cgroup.procs` files the worker joins before exec.
    var procsFDs: [Int32] { [group.procsFD, memory?.procsFD ?? -1, pids?.procsFD ?? -1, cpu?.procsFD ?? -1].filter { $0 >= 0 } }

    /// The cgroup layers these groups make up.
    var layers: Set<SandboxLayer> {
        var layers: Set<SandboxLayer> = []
        if memory != nil { layers.insert(.memoryCgroup) }
        if pids != nil { layers.insert(.pidsCgroup) }
        if cpu != nil { layers.insert(.cpuCgroup) }
        return layers
    }

    var description: String {
        ([group.description] + [memory?.description, pids?.description, cpu?.description].compactMap { $0 }).joined(separator: ", ")
    }

    /// Keeps these groups until `unhold`: neither removed nor given to another run, since a
    /// step's groups may yet be made inside them (a step is started after its call).
    public func hold() {
        for children in nesting { children.add() }
    }

    public func unhold() {
        for children in nesting { children.remove() }
    }

    private var nesting: [ChildGroups] {
        [(group as? CgroupV2Group)?.children, memory?.children, pids?.children, cpu?.children].compactMap { $0 }
    }

    /// Each group goes once it is empty and the groups made inside it are gone.
    func release() {
        group.release()
        memory?.release()
        pids?.release()
        cpu?.release()
    }
}
