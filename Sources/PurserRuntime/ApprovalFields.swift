import PurserConfig

/// `approval: [tool, …]` where tools are granted: a job's swarm (for every routine of the
/// job) and a plugin's manifest (for every job that runs the plugin). Each tool named must be
/// one that can be granted there, else the list could never apply and would only mislead.
extension JobFile.Swarm {
    mutating func readApproval(_ fields: ConfigMapping) throws(ConfigError) {
        if let value = fields["approval"] {
            approval = try PluginManifest.approvalTools(value, among: self.tools, owner: "swarm.reservation.tools")
        }
        guard let value = fields["approvalTimeout"] else { return }
        approvalTimeoutMs = try value.duration()
        guard approvalTimeoutMs > 0 else { throw value.error("must be more than 0") }
    }
}

extension PluginManifest {
    /// The tools of `value`, each one of `granted` (or `granted` holds "*").
    static func approvalTools(
        _ value: ConfigValue, among granted: [String], owner: String = "the plugin's tools"
    ) throws(ConfigError) -> [String] {
        let tools = try value.strings()
        for tool in tools {
            guard granted.contains(tool) || granted.contains("*") else {
                throw value.error("'\(tool)' is not among \(owner), so no routine could hold it")
            }
        }
        return tools
    }
}
