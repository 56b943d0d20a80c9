// A libFuzzer target for the bytes a worker chooses: the line framer, the JSON parser and
// the JSON-RPC envelope. Built by .ci/fuzz with `swiftc -sanitize=fuzzer,address`, together
// with Sources/PurserProtocol as one module (hence no import), never by `swift build`.
//
// Each input is checked against properties, not only for crashes:
//   * the framer, fed the input in chunks of sizes the input picks, emits exactly the lines
//     a plain split on "\n" gives (CR stripped, empty lines skipped), and stops at the
//     first line longer than its limit;
//   * a document the parser accepts serializes to one line that parses back to the same
//     value, and its numbers read without trapping;
//   * a line accepted as a JSON-RPC message reads back as the same message.

@_cdecl("LLVMFuzzerTestOneInput")
public func protocolFuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeBufferPointer(start: data, count: size)
    let maxLineBytes = 1 + Int(input.first ?? 0) % 200
    let framed = frame(input, maxLineBytes: maxLineBytes)
    let expected = plainSplit(input, maxLineBytes: maxLineBytes)
    precondition(framed.lines == expected.lines, "the framer's lines differ from a plain split")
    precondition(framed.oversized == expected.oversized, "the framer's oversized differs from a plain split")
    checkDocument(input, maxDepth: 1 + Int(input.last ?? 0) % 160)
    for line in framed.lines { checkMessage(line) }
    return 0
}

/// The framer's events for `input` fed in chunks of 1 to 16 bytes, the sizes taken from
/// the input itself so that the fuzzer steers the cuts.
func frame(_ input: UnsafeBufferPointer<UInt8>, maxLineBytes: Int) -> (lines: [[UInt8]], oversized: Bool) {
    var framer = LineFramer(maxLineBytes: maxLineBytes)
    var lines: [[UInt8]] = []
    var oversized = false
    var start = 0
    while start < input.count {
        let size = min(input.count - start, 1 + Int(input[start] & 0x0F))
        framer.feed(UnsafeRawBufferPointer(UnsafeBufferPointer(rebasing: input[start..<start + size]))) { event in
            precondition(!oversized, "the framer emitted after oversized")
            switch event {
            case .line(let line):
                precondition(!line.isEmpty && !line.contains(0x0A), "an empty line, or one holding a newline")
                lines.append(Array(line))
            case .oversized: oversized = true
            }
        }
        start += size
    }
    return (lines, oversized)
}

/// What the framer should give: every "\n"-terminated line up to the first one longer than
/// the limit (which, like an unterminated tail longer than the limit, makes `oversized`).
func plainSplit(_ input: UnsafeBufferPointer<UInt8>, maxLineBytes: Int) -> (lines: [[UInt8]], oversized: Bool) {
    var lines: [[UInt8]] = []
    var start = 0
    while start < input.count {
        guard let newline = input[start...].firstIndex(of: 0x0A) else {
            return (lines, input.count - start > maxLineBytes)
        }
        if newline - start > maxLineBytes { return (lines, true) }
        var line = Array(input[start..<newline])
        if line.last == 0x0D { line.removeLast() }
        if !line.isEmpty { lines.append(line) }
        start = newline + 1
    }
    return (lines, false)
}

func checkDocument(_ input: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
    guard let value = try? JSONParser.parse(input, maxDepth: maxDepth) else { return }
    let text = Array(value.serialized().utf8)
    precondition(!text.contains(0x0A), "a serialized value holds a newline")
    guard let again = try? JSONParser.parse(text, maxDepth: maxDepth) else {
        preconditionFailure("a serialized value does not parse back")
    }
    precondition(again == value, "a serialized value parses back to another value")
    readNumbers(value)
}

/// Every reading of every number, for traps on overflow.
func readNumbers(_ value: JSONValue) {
    switch value {
    case .number(let number):
        _ = number.int64
        _ = number.double
        for scale in [0, 6, 18, -3] { _ = number.scaled(by: scale) }
    case .array(let values): values.forEach(readNumbers)
    case .object(let members): members.values.forEach(readNumbers)
    default: break
    }
}

func checkMessage(_ line: [UInt8]) {
    guard let message = try? RPCMessage(line: line) else { return }
    guard let again = try? RPCMessage(line: message.line().dropLast()) else {
        preconditionFailure("a message's own line does not read back")
    }
    precondition(again == message, "a message's own line reads back as another message")
}
