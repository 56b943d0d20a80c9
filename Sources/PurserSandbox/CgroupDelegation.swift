import Glibc

/// Under cgroup v2 a group that holds processes cannot enable controllers for its child
/// groups ("no internal processes"; only the root is exempt), and a supervisor starts in
/// just such a group: a systemd service's, a login session's, a container's. So that
/// group's processes (this supervisor's, and any others there) move to a leaf of it,
/// `purser-supervisor`, and the group then enables the controllers for its children, the
/// run groups' parent among them. Everything stays inside the group it started in, under
/// whatever limits that group has.
enum CgroupDelegation {
    static let leafName = "purser-supervisor"

    /// The group under which this supervisor makes run groups: its own, or the one its
    /// own was made in, when it (or a supervisor before it) moved to the leaf already; a
    /// second supervisor started there shares the delegation instead of nesting deeper.
    static func delegatingGroup(mount: String, own: String) -> String {
        let path = mount + (own == "/" ? "" : own)
        return path.hasSuffix("/" + leafName) ? String(path.dropLast(leafName.count + 1)) : path
    }

    /// Enables those of `controllers` that `group` has for its children, first moving the
    /// group's processes to its leaf; returns those enabled. (Enabling memory where
    /// processes are fails; enabling pids or cpu there succeeds but makes the group a
    /// thread root, whose child groups can then take no process at all.)
    static func enable(_ controllers: [String], in group: String) -> Set<String> {
        let wanted = words(group + "/cgroup.controllers").intersection(controllers)
        // A process may fork into the group between a move and the next try.
        for _ in 0..<10 {
            let missing = wanted.subtracting(words(group + "/cgroup.subtree_control"))
            if missing.isEmpty { break }
            // The hierarchy's root (no cgroup.type there) may hold processes and still delegate.
            let holdsProcesses = access(group + "/cgroup.type", F_OK) == 0
                && !(readSmallFile(group + "/cgroup.procs")?.isEmpty ?? true)
            if holdsProcesses {
                guard moveProcessesToLeaf(of: group) else { break }
                continue
            }
            for controller in missing { writeFile(group + "/cgroup.subtree_control", "+" + controller) }
        }
        return wanted.intersection(words(group + "/cgroup.subtree_control"))
    }

    /// False when nothing could be moved.
    private static func moveProcessesToLeaf(of group: String) -> Bool {
        let leaf = group + "/" + leafName
        guard mkdir(leaf, 0o755) == 0 || errno == EEXIST else { return false }
        let pids = readSmallFile(group + "/cgroup.procs", limit: 1 << 20)?.split(separator: "\n") ?? []
        var moved = false
        for pid in pids where writeFile(leaf + "/cgroup.procs", String(pid)) { moved = true }
        return moved
    }

    private static func words(_ path: String) -> Set<String> {
        Set((readSmallFile(path) ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
    }
}
