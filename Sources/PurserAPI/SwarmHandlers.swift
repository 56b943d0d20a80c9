import Hummingbird
import PurserConfig
import PurserFleet
import PurserLedger
import PurserProtocol
import PurserRuntime

/// Submit, list, show and cancel: what `purser submit`, `runs` and `cancel` do, over HTTP.
struct SwarmHandlers: Sendable {
    let stores: APIStores
    /// A job file's text at most: 2,000 routines of a line each take about 200 KB.
    static let maxJobBytes = 4 << 20

    /// The body is the job file's text (YAML or JSON); `?file=NAME` names it in errors,
    /// `?priority=N` overrides the job's. Checked as `purser submit` checks it; nothing is
    /// written if anything is wrong.
    func submit(_ request: Request) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: Self.maxJobBytes)
        let query = request.uri.queryParameters
        let file = query["file"].map(String.init) ?? "job"
        var priority: Int64?
        if let text = query["priority"] {
            guard let value = Int64(String(text)) else { throw APIError(.badRequest, "bad_parameter", "priority: '\(text)' is not an integer", field: "priority") }
            priority = value
        }
        let source = String(decoding: body.readableBytesView, as: UTF8.self)
        // Read first alone, for the line and field of a job's error as a structure.
        do {
            _ = try JobFile.parse(ConfigValue.parse(source, file: file))
        } catch {
            throw APIError(job: error)
        }
        let (stores, asked) = (stores, priority)
        let id = try await stores.call(file: file) { () throws(RuntimeError) in
            try FleetSubmission.submit(source: source, file: file, priority: asked, runtime: stores.runtime, fleet: stores.fleet)
        }
        return .json(["swarmId": .string(id)], status: .created)
    }

    func list(_ request: Request) async throws -> Response {
        var limit = 50
        if let text = request.uri.queryParameters["limit"] {
            guard let value = Int(String(text)), (1...1000).contains(value) else {
                throw APIError(.badRequest, "bad_parameter", "limit: expected 1 to 1000", field: "limit")
            }
            limit = value
        }
        let (fleet, count) = (stores.fleet, limit)
        let swarms = try await stores.call { () throws(LedgerError) in try fleet.swarms(limit: count) }
        return .json(["swarms": .array(swarms.map(\.json))])
    }

    /// The queue's row, its routines, and the report once it ended (as `watch --json` prints it).
    func show(_ id: String) async throws -> Response {
        let fleet = stores.fleet
        let (row, routines) = try await stores.call { () throws(LedgerError) in
            (try fleet.swarm(id: id), try fleet.routines(swarm: id))
        }
        guard let row else { throw APIError.notFound("no swarm \(id)") }
        var object = row.json.objectValue ?? [:]
        object["routines"] = .array(routines.map(\.json))
        object["report"] = row.report.flatMap { try? JSONParser.parse($0) } ?? .null
        return .json(.object(object))
    }

    func cancel(_ id: String) async throws -> Response {
        let fleet = stores.fleet
        let (known, cancelled) = try await stores.call { () throws(LedgerError) in
            guard try fleet.swarmState(id: id) != nil else { return (false, false) }
            return (true, try fleet.cancel(swarm: id))
        }
        guard known else { throw APIError.notFound("no swarm \(id)") }
        guard cancelled else { throw APIError(.conflict, "not_cancellable", "swarm \(id) is not running or waiting: it ended, or is being cancelled") }
        return .json(["swarmId": .string(id), "state": "cancelling"], status: .accepted)
    }
}
