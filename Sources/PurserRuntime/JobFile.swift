public import PurserConfig
import PurserLedger
public import PurserProtocol

/// A swarm to run: `purser run JOB.yaml`. See docs/jobs.md for the format.
public struct JobFile: Sendable {
    public struct Team: Sendable {
        public var name: String
        /// Used to create the team when it does not exist yet.
        public var budget: TeamBudget?
    }

    public struct TeamBudget: Sendable {
        public var credits: Credits
        public var timeMs: Int64
        public var memoryBytes: Int64
        public var workers: Int64?
        public var tools: [String]
    }

    public enum ConflictPolicy: String, Sendable, CaseIterable {
        case fail, queue, priority, proportional, preempt
    }

    public struct Swarm: Sendable {
        public var name: String
        public var credits: Credits
        /// In a fleet whose team shares by `proportional`: the least credits the swarm
        /// will start with (default: all it asks).
        public var minimum: Credits?
        public var timeMs: Int64
        public var memoryBytes: Int64
        public var tools: [String]
        public var priority: Int64
        public var strategy: String
        public var concurrency: Int
        public var onConflict: ConflictPolicy
        /// How long a routine may wait for budget (queue and priority policies).
        public var queueTimeoutMs: Int64
        /// Under `priority`, a waiting routine gains one point of priority per this long.
        public var agingMs: Int64
        /// A gateway config, relative to the job file.
        public var gateway: String?
        /// Tools a routine of the swarm may hold only once a person approves it.
        public var approval: [String] = []
        /// How long a routine waits for that approval before it is denied.
        public var approvalTimeoutMs: Int64 = 3_600_000
    }

    public struct Routine: Sendable {
        public var name: String
        public var plugin: String
        public var input: JSONValue
        public var estimate: Amounts
        /// Whether the job file gave the estimate (else a registered plugin's default applies).
        public var estimateGiven: Bool
        public var tools: [String]
        /// Gateway integrations it reaches through the egress proxy, each among `tools`; nil:
        /// as its plugin's manifest says.
        public var egress: [String]?
        public var priority: Int64
        public var after: [String]
        public var retries: Int
        /// Under `proportional`: the least credits it will run with (default: all it asks).
        public var minimum: Credits?
        public var line: Int?
    }

    public var file: String
    public var team: Team
    public var swarm: Swarm
    public var routines: [Routine]

    /// Where a routine is written, for messages about its fields: `FILE:LINE: routines.NAME`.
    func field(_ routine: Routine) -> String { "\(file):\(routine.line ?? 0): routines.\(routine.name)" }

    public static func load(path: String) throws(ConfigError) -> JobFile {
        try parse(ConfigValue.load(path: path))
    }

    public static func parse(_ root: ConfigValue) throws(ConfigError) -> JobFile {
        let top = try root.mapping(allowed: ["team", "swarm", "routines"])
        let team = try Self.team(top.required("team"))
        let swarm = try Self.swarm(top.required("swarm"))
        var routines: [Routine] = []
        var names: Set<String> = []
        let list = try top.required("routines").sequence()
        guard !list.isEmpty else { throw root.error("routines: none given") }
        for item in list {
            let routine = try Self.routine(item, swarm: swarm)
            guard names.insert(routine.name).inserted else {
                throw item.error("a routine named '\(routine.name)' is given twice")
            }
            routines.append(routine)
        }
        let job = JobFile(file: root.file, team: team, swarm: swarm, routines: routines)
        try job.checkGraph(list)
        return job
    }

    // MARK: - Sections

    private static func team(_ value: ConfigValue) throws(ConfigError) -> Team {
        let fields = try value.mapping(allowed: ["name", "budget"])
        let name = try fields.required("name").nonEmptyString()
        guard let budget = fields["budget"] else { return Team(name: name, budget: nil) }
        let parts = try budget.mapping(allowed: ["credits", "time", "memory", "workers", "tools"])
        return Team(name: name, budget: TeamBudget(
            credits: try parts.required("credits").credits(),
            timeMs: try parts["time"]?.duration() ?? 10 * 365 * 86_400_000,
            memoryBytes: try parts["memory"]?.size() ?? 1 << 40,
            workers: try parts["workers"]?.int(in: 1...1_000_000),
            tools: try parts["tools"]?.strings() ?? ["*"]))
    }

    private static func swarm(_ value: ConfigValue) throws(ConfigError) -> Swarm {
        let fields = try value.mapping(allowed: [
            "name", "reservation", "priority", "strategy", "concurrency", "onConflict", "queueTimeout", "aging", "gateway",
            "approval", "approvalTimeout",
        ])
        let reservation = try fields.required("reservation")
        let parts = try reservation.mapping(allowed: ["credits", "minimum", "time", "memory", "tools"])
        let credits = try parts.required("credits").credits()
        let minimum = try parts["minimum"]?.credits()
        if let minimum, let value = parts["minimum"], minimum.micros > credits.micros || minimum.micros <= 0 {
            throw value.error("minimum must be more than 0 and at most the reservation's credits (\(credits))")
        }
        var swarm = Swarm(
            name: try fields.required("name").nonEmptyString(),
            credits: credits,
            minimum: minimum,
            timeMs: try parts["time"]?.duration() ?? 3_600_000,
            memoryBytes: try parts["memory"]?.size() ?? 8 << 30,
            tools: try parts["tools"]?.strings() ?? [],
            priority: try fields["priority"]?.int(in: -1000...1000) ?? 0,
            strategy: try fields["strategy"]?.choice(ReservationStrategy.allCases.map(\.rawValue)) ?? "conservative",
            concurrency: Int(try fields["concurrency"]?.int(in: 1...4096) ?? 4),
            onConflict: ConflictPolicy(
                rawValue: try fields["onConflict"]?.choice(ConflictPolicy.allCases.map(\.rawValue)) ?? "queue")!,
            queueTimeoutMs: try fields["queueTimeout"]?.duration() ?? 600_000,
            agingMs: max(1, try fields["aging"]?.duration() ?? 1_000),
            gateway: try fields["gateway"]?.nonEmptyString())
        try swarm.readApproval(fields)
        return swarm
    }

    private static func routine(_ value: ConfigValue, swarm: Swarm) throws(ConfigError) -> Routine {
        let fields = try value.mapping(allowed: [
            "name", "plugin", "input", "estimate", "tools", "egress", "priority", "after", "retries", "minimum",
        ])
        let name = try fields.required("name").nonEmptyString()
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw try fields.required("name").error("a routine's name may hold letters, digits, '_' and '-' only")
        }
        var estimate = Amounts(credits: Credits(whole: 1), timeMs: 60_000, memoryBytes: 256 << 20)
        if let given = fields["estimate"] {
            let parts = try given.mapping(allowed: ["credits", "time", "memory"])
            estimate.credits = try parts["credits"]?.credits() ?? estimate.credits
            estimate.timeMs = try parts["time"]?.duration() ?? estimate.timeMs
            estimate.memoryBytes = try parts["memory"]?.size() ?? estimate.memoryBytes
            guard estimate.timeMs > 0, estimate.memoryBytes > 0 else { throw given.error("time and memory must be positive") }
        }
        let input = fields["input"]?.json ?? .null
        try Template.check(input, at: fields["input"])
        let tools = try fields["tools"]?.strings() ?? []
        return Routine(
            name: name, plugin: try fields.required("plugin").nonEmptyString(), input: input, estimate: estimate,
            estimateGiven: fields["estimate"] != nil,
            tools: tools, egress: try egress(fields["egress"], tools: tools), priority: try fields["priority"]?.int(in: -1000...1000) ?? 0,
            after: try fields["after"]?.strings() ?? [], retries: Int(try fields["retries"]?.int(in: 0...10) ?? 0),
            minimum: try fields["minimum"]?.credits(), line: value.line)
    }

    /// An integration reached through egress is a tool the routine holds, granted by its
    /// swarm like any other: so each must be among the routine's `tools`.
    private static func egress(_ value: ConfigValue?, tools: [String]) throws(ConfigError) -> [String]? {
        guard let value else { return nil }
        let egress = try value.strings()
        if let unheld = egress.first(where: { !tools.contains($0) }) {
            throw value.error("\(unheld) is not among the routine's tools (an integration reached through egress is a tool it holds)")
        }
        return egress
    }

    // MARK: - The graph

    /// Every `after` names a routine, the dependencies form no cycle, and every template
    /// refers to a routine this one runs after (directly or not).
    private func checkGraph(_ items: [ConfigValue]) throws(ConfigError) {
        let byName = Dictionary(uniqueKeysWithValues: routines.map { ($0.name, $0) })
        for (routine, item) in zip(routines, items) {
            for dependency in routine.after where byName[dependency] == nil {
                throw ConfigError(file: file, line: item.line, field: "\(item.path).after", message: "no routine named '\(dependency)'")
            }
        }
        if let cycle = cycle() {
            let index = routines.firstIndex { $0.name == cycle[0] } ?? 0
            throw ConfigError(
                file: file, line: items[index].line, field: "\(items[index].path).after",
                message: "the dependencies form a cycle: \(cycle.joined(separator: " → "))")
        }
        for (routine, item) in zip(routines, items) {
            let upstream = ancestors(of: routine.name)
            for reference in Template.references(in: routine.input) where !upstream.contains(reference.routine) {
                let why = byName[reference.routine] == nil ? "there is no routine named '\(reference.routine)'"
                    : "'\(routine.name)' does not run after '\(reference.routine)' (add it to after)"
                throw ConfigError(file: file, line: item.line, field: "\(item.path).input", message: "${\(reference.text)}: \(why)")
            }
        }
    }

    func ancestors(of name: String) -> Set<String> {
        var seen: Set<String> = []
        var stack = routines.first { $0.name == name }?.after ?? []
        while let next = stack.popLast() {
            guard seen.insert(next).inserted else { continue }
            stack += routines.first { $0.name == next }?.after ?? []
        }
        return seen
    }

    /// A cycle among the dependencies, as names from its start back to it; nil if none.
    func cycle() -> [String]? {
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var path: [String] = []
        let after = Dictionary(uniqueKeysWithValues: routines.map { ($0.name, $0.after) })
        func visit(_ name: String) -> [String]? {
            if state[name] == 2 { return nil }
            if state[name] == 1, let start = path.firstIndex(of: name) { return Array(path[start...]) + [name] }
            state[name] = 1
            path.append(name)
            for next in after[name] ?? [] {
                if let found = visit(next) { return found }
            }
            path.removeLast()
            state[name] = 2
            return nil
        }
        for routine in routines {
            if let found = visit(routine.name) { return found.reversed() }
        }
        return nil
    }
}

/// `${routine.output.a.b}` in a routine's input: replaced, when the routine starts, by that
/// part of an earlier routine's output. A string that is exactly one template becomes the
/// value itself (a number stays a number, an object an object); inside a longer string the
/// value is written as text (strings as they are, anything else as JSON). `$${` is a
/// literal `${`.
public enum Template {
    public struct Reference: Sendable, Hashable {
        public var text: String
        public var routine: String
        public var path: [String]
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    static func check(_ input: JSONValue, at value: ConfigValue?) throws(ConfigError) {
        for reference in references(in: input) where reference.path.first != "output" {
            throw value?.error("${\(reference.text)}: expected ${routine.output...}")
                ?? ConfigError(file: "", line: nil, field: "input", message: "bad template")
        }
    }

    public static func references(in value: JSONValue) -> [Reference] {
        switch value {
        case .string(let text): return pieces(text).compactMap { if case .reference(let reference) = $0 { reference } else { nil } }
        case .array(let items): return items.flatMap(references)
        case .object(let object): return object.values.flatMap(references)
        default: return []
        }
    }

    /// `value` with every template filled from `outputs` (by routine name).
    public static func fill(_ value: JSONValue, outputs: [String: JSONValue]) throws(Failure) -> JSONValue {
        switch value {
        case .string(let text):
            let parts = pieces(text)
            if parts.count == 1, case .reference(let reference) = parts[0] { return try lookUp(reference, outputs) }
            var result = ""
            for part in parts {
                switch part {
                case .text(let literal): result += literal
                case .reference(let reference):
                    let found = try lookUp(reference, outputs)
                    result += found.stringValue ?? found.serialized()
                }
            }
            return .string(result)
        case .array(let items):
            var filled: [JSONValue] = []
            for item in items { filled.append(try fill(item, outputs: outputs)) }
            return .array(filled)
        case .object(let object):
            var filled: [String: JSONValue] = [:]
            for (key, item) in object { filled[key] = try fill(item, outputs: outputs) }
            return .object(filled)
        default: return value
        }
    }

    private static func lookUp(_ reference: Reference, _ outputs: [String: JSONValue]) throws(Failure) -> JSONValue {
        guard var value = outputs[reference.routine] else {
            throw Failure(description: "${\(reference.text)}: \(reference.routine) has no output")
        }
        for key in reference.path.dropFirst() {
            if let index = Int(key), let items = value.arrayValue, items.indices.contains(index) {
                value = items[index]
            } else if let next = value.objectValue?[key] {
                value = next
            } else {
                throw Failure(description: "${\(reference.text)}: \(reference.routine)'s output has no '\(key)'")
            }
        }
        return value
    }

    private enum Piece {
        case text(String)
        case reference(Reference)
    }

    private static func pieces(_ text: String) -> [Piece] {
        var pieces: [Piece] = []
        var literal = ""
        var rest = Substring(text)
        while let start = rest.range(of: "${") {
            if rest[..<start.lowerBound].hasSuffix("$") {
                literal += rest[..<rest.index(before: start.lowerBound)] + "${"
                rest = rest[start.upperBound...]
                continue
            }
            guard let end = rest[start.upperBound...].firstIndex(of: "}") else { break }
            literal += rest[..<start.lowerBound]
            let inner = String(rest[start.upperBound..<end])
            let parts = inner.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            if !literal.isEmpty { pieces.append(.text(literal)) }
            literal = ""
            pieces.append(.reference(Reference(text: inner, routine: parts[0], path: Array(parts.dropFirst()))))
            rest = rest[rest.index(after: end)...]
        }
        literal += rest
        if !literal.isEmpty || pieces.isEmpty { pieces.append(.text(literal)) }
        return pieces
    }
}
