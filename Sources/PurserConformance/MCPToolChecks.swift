import PurserProtocol
import PurserRuntime

/// server/tools#listing: every page of `tools/list`, followed by `nextCursor`, holds tools
/// Purser can register (`MCPServer.checkedTools`, as `purser mcp add` checks them).
struct MCPToolListCheck: MCPCheck {
    static let maxPages = 100
    static let maxListBytes = 8 << 20

    let name = "tools-list"
    let section = SpecSection.mcpToolListing
    let summary = "tools/list well formed on every page (nextCursor followed): tool names per MCP, listed once, inputSchema of type object"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try server.mcpInitialize()
        var tools: [JSONValue] = []
        var bytes = 0
        var cursor: String?
        var pages = 0
        repeat {
            pages += 1
            guard pages <= Self.maxPages else { throw CheckFailure("tools/list went on past \(Self.maxPages) pages") }
            let page = try server.ask("tools/list", cursor.map { ["cursor": .string($0)] }, "tools/list page \(pages)")
                .object("tools/list page \(pages) is answered with a result object")
            guard let listed = page["tools"]?.arrayValue else { throw CheckFailure("page \(pages): result.tools is required, an array") }
            tools += listed
            bytes += JSONValue.array(listed).serialized().utf8.count
            guard bytes <= Self.maxListBytes else { throw CheckFailure("tools/list holds over \(Self.maxListBytes) bytes") }
            switch page["nextCursor"] {
            case nil, .null?: cursor = nil
            case .string(let next)?: cursor = next
            default: throw CheckFailure("page \(pages): nextCursor must be a string")
            }
        } while cursor != nil
        guard !tools.isEmpty else { return .pass("no tools listed, on \(pages) page(s)") }
        let checked: [MCPServer.MCPTool]
        do {
            checked = try MCPServer.checkedTools(listed: ["tools": .array(tools)])
        } catch {
            throw CheckFailure(error.message)
        }
        let names = checked.prefix(5).map(\.name).joined(separator: ", ") + (checked.count > 5 ? ", …" : "")
        return .pass("\(checked.count) tool(s) on \(pages) page(s): \(names)")
    }
}

/// server/tools#error-handling: calling a tool the server does not have is a protocol
/// error, or a result with `isError: true`; never a plain result.
struct MCPUnknownToolCheck: MCPCheck {
    static let tool = "purser-conformance-no-such-tool"

    let name = "unknown-tool"
    let section = SpecSection.mcpToolErrors
    let summary = "tools/call of an unknown tool answered with a JSON-RPC error or a result with isError: true"

    func run(_ server: WorkerConnection) throws(CheckFailure) -> CheckResult {
        try server.mcpInitialize()
        let answer = try server.ask("tools/call", ["name": .string(Self.tool), "arguments": [:]], "tools/call of \(Self.tool)")
        switch answer.result {
        case .failure(let error):
            return .pass("answered error \(WorkerConnection.text(error))")
        case .success(let value):
            guard value["isError"] == .bool(true) else {
                throw CheckFailure("answered tools/call of \(Self.tool), which it does not have, with a result without isError: true")
            }
            return .pass("answered a result with isError: true")
        }
    }
}
