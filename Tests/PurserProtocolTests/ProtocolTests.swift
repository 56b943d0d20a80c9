import Foundation
import PurserProtocol
import PurserTestSupport
import Testing

@Suite("Wire messages against protocol/schemas", .timeLimit(.minutes(1)))
struct SchemaTests {
    static let budget = Budget(credits: Credits(micros: 2_500_000), deadlineMs: 4_102_444_800_000, memoryBytes: 1 << 28, tools: ["http"])

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
    ]

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
