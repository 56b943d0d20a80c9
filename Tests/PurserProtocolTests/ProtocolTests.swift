import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

@Suite("Wire messages against protocol/schemas", .timeLimit(.minutes(1)))
struct SchemaTests {
    static let budget = Budget(credits: Credits(micros: 2_500_000), deadlineMs: 4_102_444_800_000, memoryBytes: 1 << 28, tools: ["http"])
    /// A gateway call with a query, headers and a text body, and one whose body is not UTF-8.
    static let gatewayText = GatewayCallParams(
        integration: "weather", method: "POST", path: "/v1/forecast?units=metric", query: ["city": "Zürich", "days": "3"],
        headers: ["Accept": "application/json", "X-Trace": "t-1"], body: Array(#"{"q":"é"}"#.utf8))
    static let gatewayBinary = GatewayCallParams(
        integration: "storage", method: "PUT", path: "/blobs/logo.png", headers: ["Content-Type": "image/png"],
        body: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0xFF, 0x00])
    static let gatewayResultText = GatewayCallResult(
        status: 404, headers: ["content-type": "application/json", "vary": "Accept, Accept-Encoding"],
        body: Array(#"{"error":"no such city"}"#.utf8), credits: Credits(micros: 1_500), cached: false)
    static let gatewayResultBinary = GatewayCallResult(
        status: 200, headers: ["content-type": "image/png"], body: [0xFF, 0xD8, 0xFF, 0x00, 0x80], credits: .zero, cached: true)
    static let gatewayError = RPCError(
        code: ErrorCode.gatewayFailed, message: "weather allows 10/s, burst 5",
        data: ["reason": .string(GatewayReason.rateLimited.rawValue), "credits": Credits.zero.json, "retryAfterMs": 120])

    /// Every message type the code sends or accepts, with the schema that describes it.
    static let cases: [(schema: String, message: RPCMessage)] = [
        ("initialize.request", .request(id: .number(1), method: Method.initialize, params: InitializeParams(
            supervisorVersion: "0.1.0", workerID: "w-1", plugin: "echo", maxLineBytes: 8_388_608).json)),
        ("initialize.result", .response(id: .number(1), result: .success(InitializeResult(
            pluginName: "echo", pluginVersion: "1.0.0", capabilities: ["cancel": true]).json))),
        ("run.request", .request(id: .number(2), method: Method.run, params: RunParams(
            runID: "r-1", input: ["text": "héllo", "n": [1, 2.5, nil]], budget: budget).json)),
        ("run.result", .response(id: .number(2), result: .success(RunResult(output: "x", credits: Credits(micros: 10)).json))),
        ("cancel.notification", .notification(method: Method.cancel, params: CancelParams(runID: "r-1", reason: "deadline").json)),
        ("shutdown.request", .request(id: .number(3), method: Method.shutdown, params: nil)),
        ("shutdown.result", .response(id: .number(3), result: .success([:]))),
        ("ping.request", .request(id: .string("p1"), method: Method.ping, params: nil)),
        ("ping.result", .response(id: .string("p1"), result: .success([:]))),
        ("usage.notification", .notification(method: Method.usage, params: UsageParams(credits: Credits(micros: 1)).json)),
        ("progress.notification", .notification(method: Method.progress, params: ProgressParams(runID: "r-1", fraction: 0.5, message: "half").json)),
        ("log.notification", .notification(method: Method.log, params: LogParams(level: "warning", message: "hm").json)),
        ("error.response", .response(id: .number(2), result: .failure(RPCError(code: ErrorCode.cancelled, message: "cancelled")))),
        ("gateway-call.request", .request(id: .string("g-1"), method: Method.gatewayCall, params: gatewayText.json)),
        ("gateway-call.request", .request(id: .number(7), method: Method.gatewayCall, params: gatewayBinary.json)),
        ("gateway-call.request", .request(id: .string("g-2"), method: Method.gatewayCall, params: GatewayCallParams(
            integration: "weather", path: "/v1/today").json)),
        ("gateway-call.result", .response(id: .string("g-1"), result: .success(gatewayResultText.json))),
        ("gateway-call.result", .response(id: .number(7), result: .success(gatewayResultBinary.json))),
        ("error.response", .response(id: .string("g-2"), result: .failure(gatewayError))),
        ("routine-call.request", .request(id: .number(8), method: Method.routineCall, params: RoutineCallParams(
            plugin: "wordcount", input: ["text": "one two"], credits: Credits(whole: 2), timeMs: 5_000, memoryBytes: 1 << 27).json)),
        ("routine-call.result", .response(id: .number(8), result: .success(RoutineCallResult(
            output: ["words": 2], credits: Credits(micros: 2_000)).json))),
        ("error.response", .response(id: .number(9), result: .failure(RPCError(
            code: ErrorCode.routineFailed, message: "wordcount: crashed", data: ["verdict": "crashed", "credits": 0])))),
    ]

    @Test func routineCallParamsAndResultsDecodeBack() throws {
        let params = RoutineCallParams(plugin: "p", input: [1, "a"], credits: Credits(micros: 1_500_000), timeMs: 100)
        #expect(try RoutineCallParams(json: params.json) == params)
        let result = RoutineCallResult(output: ["x": nil], credits: Credits(micros: 7))
        #expect(try RoutineCallResult(json: result.json) == result)
        #expect(throws: ProtocolError.self) { try RoutineCallParams(json: ["plugin": "p"]) }
        #expect(throws: ProtocolError.self) { try RoutineCallParams(json: ["plugin": "p", "budget": ["credits": 1, "timeMs": 0]]) }
    }

    @Test("encoded messages validate, and decode back to themselves", arguments: cases.indices)
    func roundTrip(index: Int) throws {
        let (schemaName, message) = Self.cases[index]
        let line = message.line()
        #expect(line.last == 0x0A)
        #expect(!line.dropLast().contains(0x0A))
        let decoded = try RPCMessage(line: line.dropLast())
        #expect(decoded == message)
        for schema in [schemaName, "envelope"] {
            let validator = try SchemaValidator(path: Fixtures.file("protocol/schemas/\(schema).json"))
            let problems = validator.validate(message.json)
            #expect(problems.isEmpty, "\(schemaName) against \(schema): \(problems)")
        }
    }

    @Test("gateway/call params and results decode back to what was encoded, bytes and all")
    func gatewayRoundTrip() throws {
        for params in [Self.gatewayText, Self.gatewayBinary, GatewayCallParams(integration: "w", path: "/")] {
            let line = RPCMessage.request(id: .string("g"), method: Method.gatewayCall, params: params.json).line()
            guard case .request(_, _, let decoded) = try RPCMessage(line: line.dropLast()) else {
                Issue.record("not a request")
                continue
            }
            #expect(try GatewayCallParams(json: decoded) == params)
        }
        #expect(Self.gatewayBinary.json["bodyEncoding"] == "base64")
        #expect(Self.gatewayText.json["bodyEncoding"] == nil)
        for result in [Self.gatewayResultText, Self.gatewayResultBinary] {
            let line = RPCMessage.response(id: .number(1), result: .success(result.json)).line()
            guard case .response(_, .success(let decoded)) = try RPCMessage(line: line.dropLast()) else {
                Issue.record("not a result")
                continue
            }
            #expect(try GatewayCallResult(json: decoded) == result)
        }
        #expect(Self.gatewayResultText.json["bodyEncoding"] == "utf8")
        #expect(Self.gatewayResultBinary.json["bodyEncoding"] == "base64")
        // Defaults: GET, no query, no headers, an empty body.
        let minimal = try GatewayCallParams(json: ["integration": "w", "path": "/x"])
        #expect(minimal == GatewayCallParams(integration: "w", method: "GET", path: "/x"))
        #expect(try GatewayCallParams(json: ["integration": "w", "path": "/", "body": "AAE=", "bodyEncoding": "base64"]).body == [0, 1])
        // The error answer: code -32010, data.reason one of the documented reasons.
        let line = RPCMessage.response(id: .string("g-2"), result: .failure(Self.gatewayError)).line()
        guard case .response(_, .failure(let error)) = try RPCMessage(line: line.dropLast()) else {
            Issue.record("not an error")
            return
        }
        #expect(error.code == -32010)
        #expect(error.data?["reason"]?.stringValue.flatMap(GatewayReason.init(rawValue:)) == .rateLimited)
        #expect(error.data?["retryAfterMs"]?.numberValue?.int64 == 120)
    }

    @Test("the schemas reject what the decoder rejects")
    func rejections() throws {
        let run = try SchemaValidator(path: Fixtures.file("protocol/schemas/run.request.json"))
        var params = RunParams(runID: "r", input: nil, budget: Self.budget).json.objectValue!
        params["budget"] = ["credits": -1, "deadlineMs": 1, "memoryBytes": 1, "tools": []]
        let bad: JSONValue = ["jsonrpc": "2.0", "id": 1, "method": "run", "params": .object(params)]
        #expect(!run.validate(bad).isEmpty)
        #expect(throws: ProtocolError.self) { try RunParams(json: bad["params"]) }
        let progress = try SchemaValidator(path: Fixtures.file("protocol/schemas/progress.notification.json"))
        let tooFar: JSONValue = ["jsonrpc": "2.0", "method": "progress", "params": ["runId": "r", "fraction": 1.5]]
        #expect(!progress.validate(tooFar).isEmpty)
        #expect(throws: ProtocolError.self) { try ProgressParams(json: tooFar["params"]) }
        let gateway = try SchemaValidator(path: Fixtures.file("protocol/schemas/gateway-call.request.json"))
        let badParams: [JSONValue] = [
            ["path": "/x"],
            ["integration": "w"],
            ["integration": "w", "path": "/x", "query": ["days": 3]],
            ["integration": "w", "path": "/x", "headers": ["Accept": nil]],
            ["integration": "w", "path": "/x", "headers": "Accept: */*"],
            ["integration": "w", "path": "/x", "body": "x", "bodyEncoding": "hex"],
            ["integration": "w", "path": 7],
        ]
        for params in badParams {
            let call: JSONValue = ["jsonrpc": "2.0", "id": 1, "method": "gateway/call", "params": params]
            #expect(!gateway.validate(call).isEmpty, "schema accepted \(params.serialized())")
            #expect(throws: ProtocolError.self) { try GatewayCallParams(json: params) }
        }
        let result = try SchemaValidator(path: Fixtures.file("protocol/schemas/gateway-call.result.json"))
        var answer = Self.gatewayResultText.json.objectValue!
        answer["headers"] = ["x-count": 2]
        #expect(!result.validate(["jsonrpc": "2.0", "id": 1, "result": .object(answer)]).isEmpty)
        #expect(throws: ProtocolError.self) { try GatewayCallResult(json: .object(answer)) }
    }

    @Test("each decoding error names the field")
    func fieldNames() {
        let cases: [(JSONValue, String)] = [
            (["runId": "r", "budget": ["credits": "ten", "deadlineMs": 1, "memoryBytes": 1]], "params.budget.credits"),
            (["runId": "r", "budget": ["credits": 1, "deadlineMs": 1.5, "memoryBytes": 1]], "params.budget.deadlineMs"),
            (["budget": ["credits": 1, "deadlineMs": 1, "memoryBytes": 1]], "params.runId"),
            (["runId": "r", "budget": ["credits": 1, "deadlineMs": 1, "memoryBytes": 1, "tools": [1]]], "params.budget.tools[0]"),
        ]
        for (params, field) in cases {
            do {
                _ = try RunParams(json: params)
                Issue.record("accepted \(params.serialized())")
            } catch {
                #expect(error.message.hasPrefix(field), "\(error.message) should name \(field)")
            }
        }
        let gatewayCases: [(JSONValue, String)] = [
            (["path": "/x"], "params.integration"),
            (["integration": "w", "path": "/x", "query": ["days": 3]], "params.query.days"),
            (["integration": "w", "path": "/x", "body": "%%", "bodyEncoding": "base64"], "params.body"),
            (["integration": "w", "path": "/x", "bodyEncoding": "hex"], "params.bodyEncoding"),
        ]
        for (params, field) in gatewayCases {
            do {
                _ = try GatewayCallParams(json: params)
                Issue.record("accepted \(params.serialized())")
            } catch {
                #expect(error.message.hasPrefix(field), "\(error.message) should name \(field)")
            }
        }
    }
}

@Suite("protocol/SPEC.md and the schemas' own examples", .timeLimit(.minutes(1)))
struct SpecExampleTests {
    /// Every line of every `json` block after a `<!-- schema: FILE -->` marker, with its schema
    /// ("auto": by method, a response by the method of the request with its id).
    static func examples() throws -> [(schema: String, line: String)] {
        let text = try String(contentsOfFile: Fixtures.file("protocol/SPEC.md"), encoding: .utf8)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        var examples: [(String, String)] = []
        var index = 0
        while index < lines.count {
            let line = lines[index]
            index += 1
            guard line.hasPrefix("<!-- schema: "), line.hasSuffix(" -->") else { continue }
            let schema = String(line.dropFirst("<!-- schema: ".count).dropLast(" -->".count))
            guard index < lines.count, lines[index] == "```json" else { continue }
            index += 1
            var methods: [String: String] = [:]
            while index < lines.count, lines[index] != "```" {
                let example = lines[index]
                index += 1
                guard schema == "auto" else {
                    examples.append((String(schema.dropLast(".json".count)), example))
                    continue
                }
                let message = try JSONParser.parse(example)
                let method = message["method"]?.stringValue?.replacingOccurrences(of: "/", with: "-")
                let id = message["id"]?.serialized()
                switch (method, id) {
                case (let method?, let id?):
                    methods[id] = method
                    examples.append((method + ".request", example))
                case (let method?, nil): examples.append((method + ".notification", example))
                case (nil, let id?):
                    let name = message["error"] != nil ? "error.response" : (methods[id] ?? "?") + ".result"
                    examples.append((name, example))
                case (nil, nil): examples.append(("?", example))
                }
            }
        }
        return examples
    }

    @Test("every example line in the spec validates against its schema and decodes")
    func specExamples() throws {
        let examples = try Self.examples()
        #expect(examples.count >= 30)
        let schemas = Set(examples.map(\.schema))
        #expect(schemas.isSuperset(of: ["gateway-call.request", "gateway-call.result", "error.response", "routine-call.request", "routine-call.result"]))
        var validators: [String: SchemaValidator] = [:]
        for name in schemas.union(["envelope"]) {
            validators[name] = try SchemaValidator(path: Fixtures.file("protocol/schemas/\(name).json"))
        }
        for (schema, line) in examples {
            let message = try JSONParser.parse(line)
            for name in [schema, "envelope"] {
                let problems = validators[name]?.validate(message) ?? ["no schema \(name)"]
                #expect(problems.isEmpty, "\(line) against \(name): \(problems)")
            }
            #expect(throws: Never.self) { try RPCMessage(line: Array(line.utf8)) }
        }
    }

    @Test("the gateway's reasons and error code are the ones the spec documents")
    func gatewayReasonsDocumented() throws {
        let text = try String(contentsOfFile: Fixtures.file("protocol/SPEC.md"), encoding: .utf8)
        for reason in GatewayReason.allCases { #expect(text.contains("| `\(reason.rawValue)` |"), "\(reason.rawValue)") }
        #expect(text.contains("| \(ErrorCode.gatewayFailed) | gateway call failed |"))
        for (schema, line) in try Self.examples() where schema == "error.response" {
            let error = try #require(try JSONParser.parse(line)["error"])
            guard error["code"]?.numberValue?.int64 == Int64(ErrorCode.gatewayFailed) else { continue }
            let reason = try #require(error["data"]?["reason"]?.stringValue)
            #expect(GatewayReason(rawValue: reason) != nil, "\(line)")
            #expect(error["data"]?["credits"]?.numberValue != nil, "\(line)")
        }
    }

    @Test("each schema's own examples validate against it")
    func schemaExamples() throws {
        let folder = Fixtures.file("protocol/schemas")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".json") }.sorted()
        #expect(names.contains("gateway-call.result.json"))
        for name in names {
            let validator = try SchemaValidator(path: "\(folder)/\(name)")
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/\(name)"))
            let examples = try JSONParser.parse([UInt8](data))["examples"]?.arrayValue ?? []
            #expect(!examples.isEmpty, "\(name) has no examples")
            for example in examples {
                let problems = validator.validate(example)
                #expect(problems.isEmpty, "\(name): \(example.serialized()): \(problems)")
            }
        }
    }
}

@Suite("Transcripts in protocol/examples replayed against the echo plugin", .timeLimit(.minutes(1)))
struct TranscriptTests {
    static let transcripts = (try? FileManager.default.contentsOfDirectory(atPath: Fixtures.file("protocol/examples")))?
        .filter { $0.hasSuffix(".ndjson") }.sorted() ?? []

    @Test("there are transcripts to replay")
    func present() { #expect(Self.transcripts.count >= 3) }

    @Test(arguments: transcripts)
    func replay(name: String) throws {
        let text = try String(contentsOfFile: Fixtures.file("protocol/examples/\(name)"), encoding: .utf8)
        let channel = try LineChannel(executable: Fixtures.product("echo"))
        for line in text.split(separator: "\n") where !line.isEmpty {
            let entry = try JSONParser.parse(String(line))
            let message = try #require(entry["message"])
            if entry["from"] == "supervisor" {
                try channel.send(message)
                continue
            }
            let actual = try #require(try channel.receive(), "echo closed stdout; expected \(message.serialized())")
            #expect(Self.comparable(actual) == Self.comparable(message), "\(name)")
        }
        #expect(channel.finish() == 0)
    }

    /// Errors are compared on their code only; their messages are free text.
    static func comparable(_ value: JSONValue) -> JSONValue {
        guard case .object(var object) = value, let code = object["error"]?["code"] else { return value }
        object["error"] = ["code": code]
        return .object(object)
    }
}

@Suite("Framing", .timeLimit(.minutes(1)))
struct FramingTests {
    func lines(_ chunks: [String], max: Int = 16) -> [String] {
        var framer = LineFramer(maxLineBytes: max)
        var result: [String] = []
        for chunk in chunks {
            Array(chunk.utf8).withUnsafeBytes { bytes in
                framer.feed(bytes) { event in
                    switch event {
                    case .line(let line): result.append(String(decoding: line, as: UTF8.self))
                    case .oversized: result.append("<oversized>")
                    }
                }
            }
        }
        return result
    }

    @Test func splitsAcrossChunks() {
        #expect(lines(["ab", "c\nd", "e\r\n\n", "f"]) == ["abc", "de"])
    }

    @Test func refusesLongLinesWithoutBuffering() {
        #expect(lines(["0123456789", "0123456789"]) == ["<oversized>"])
        #expect(lines(["01234567890123456789\nok\n"]) == ["<oversized>"])
        #expect(lines(["0123456789012345\n"]) == ["0123456789012345"])
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: ProtocolError.self) { try RPCMessage(line: Array(deep.utf8)) }
        let bad: [UInt8] = Array(#"{"jsonrpc":"2.0","method":"log","params":{"level":"info","message":""#.utf8) + [0xFF, 0xFE] + Array(#""}}"#.utf8)
        #expect(throws: ProtocolError.self) { try RPCMessage(line: bad) }
    }
}

@Suite("Credits", .timeLimit(.minutes(1)))
struct CreditsTests {
    @Test func fixedPointRoundsUp() throws {
        #expect(Credits(parsing: "1.5")?.micros == 1_500_000)
        #expect(Credits(parsing: "0.0000001")?.micros == 1)
        #expect(Credits(parsing: "-1") == nil)
        #expect(Credits(parsing: "ten") == nil)
        #expect(Credits(micros: 2_500_000).description == "2.5")
        #expect(Credits(micros: 1).description == "0.000001")
        #expect(throws: ProtocolError.self) { try UsageParams(json: ["credits": -0.5]) }
    }
}
