import Glibc

/// How much a plugin is trusted. Untrusted, the default, gets every layer and refuses to
/// run where one is missing, unless the run allows a downgrade; trusted opts out of the
/// namespaces, the filter and the unprivileged uid, and keeps the rest.
public enum SandboxLevel: String, Sendable, Hashable, CaseIterable {
    case untrusted
    case trusted

    /// The layers this level asks for; cgroups are applied wherever the host has them.
    public var wanted: Set<SandboxLayer> { wanted(root: geteuid() == 0) }

    /// A root supervisor makes namespaces without a user namespace; one that is not root
    /// needs one (and cannot give workers a uid apart from its own).
    public func wanted(root: Bool) -> Set<SandboxLayer> {
        switch self {
        case .untrusted: Set(SandboxLayer.allCases).subtracting(root ? [.userNamespace] : [])
        case .trusted: [.memoryCgroup, .pidsCgroup]
        }
    }

    /// Resolves this level on `host`: which layers a run gets, and which it goes without.
    /// Throws `layerMissing`, naming each missing layer and what to do, unless `allowDegraded`.
    public func plan(
        host: HostSupport = .current, hiddenPaths: [String] = [], allowDegraded: Bool = false
    ) throws(SandboxError) -> SandboxPlan {
        let missing = wanted.subtracting(host.available)
        if !missing.isEmpty && !allowDegraded {
            let lines = missing.sorted().map { "  \($0.rawValue): \(host.reasons[$0] ?? "not available")" }
            throw SandboxError(
                code: .layerMissing,
                message: "the \(rawValue) profile needs layers this host lacks:\n" + lines.joined(separator: "\n")
                    + "\nSee `purser doctor`, or allow running without them with --allow-degraded.")
        }
        let applied = wanted.intersection(host.available)
        var isolation = Isolation()
        isolation.network = true
        isolation.processes = true
        isolation.filesystem = true
        isolation.seccomp = true
        isolation.user = Isolation.sandboxUser
        isolation.userNamespace = true
        isolation.hiddenPaths = hiddenPaths
        return SandboxPlan(
            level: self, isolation: isolation.keeping(applied), applied: applied.sorted(), missing: missing.sorted(),
            optedOut: SandboxLevel.untrusted.wanted.subtracting(wanted).sorted())
    }
}

/// A level resolved on this host: what a run gets, for its spawn and its report.
public struct SandboxPlan: Sendable {
    public var level: SandboxLevel
    public var isolation: Isolation
    public var applied: [SandboxLayer]
    /// Wanted but missing on this host: the run was allowed to go without them.
    public var missing: [SandboxLayer]
    /// Not wanted at this level (trusted plugins).
    public var optedOut: [SandboxLayer]
}
