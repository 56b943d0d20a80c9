import Glibc

/// How much a plugin is trusted. Untrusted, the default, gets every layer and refuses to
/// run where one is missing, unless the run allows a downgrade; trusted opts out of the
/// layers its manifest names (by default the namespaces, the filter and the unprivileged
/// uid), and keeps the rest.
public enum SandboxLevel: String, Sendable, Hashable, CaseIterable {
    case untrusted
    case trusted

    /// The layers a trusted plugin may opt out of; the cgroups hold every run to its budget.
    public static let optional: Set<SandboxLayer> = [
        .network, .pidNamespace, .mountNamespace, .seccomp, .unprivilegedUser, .userNamespace,
    ]

    /// The layers this level asks for; cgroups are applied wherever the host has them.
    public var wanted: Set<SandboxLayer> { wanted(root: geteuid() == 0) }

    /// A root supervisor makes namespaces without a user namespace; one that is not root
    /// needs one (and cannot give workers a uid apart from its own). A trusted plugin opts
    /// out of `optOut`, by default of every optional layer.
    public func wanted(root: Bool, optOut: Set<SandboxLayer>? = nil) -> Set<SandboxLayer> {
        let all = Set(SandboxLayer.allCases).subtracting(root ? [.userNamespace] : [])
        switch self {
        case .untrusted: return all
        case .trusted: return all.subtracting(optOut ?? Self.optional)
        }
    }

    /// Resolves this level on `host`: which layers a run gets, and which it goes without.
    /// Throws `layerMissing`, naming each missing layer and what to do, unless `allowDegraded`.
    public func plan(
        host: HostSupport = .current, hiddenPaths: [String] = [], allowDegraded: Bool = false,
        optOut: Set<SandboxLayer>? = nil
    ) throws(SandboxError) -> SandboxPlan {
        let wanted = wanted(root: geteuid() == 0, optOut: optOut)
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
