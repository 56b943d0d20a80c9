import Foundation
public import PurserProtocol

/// A plugin started by hand, spoken to one line at a time (for transcript replays).
public final class LineChannel {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered: [UInt8] = []

    public init(executable: String, arguments: [String] = []) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    public func send(_ value: JSONValue) throws {
        try input.fileHandleForWriting.write(contentsOf: Data((value.serialized() + "\n").utf8))
    }

    /// The next line the plugin writes, or nil at end of file.
    public func receive() throws -> JSONValue? {
        while true {
            if let newline = buffered.firstIndex(of: 0x0A) {
                let line = Array(buffered[..<newline])
                buffered.removeSubrange(...newline)
                return try JSONParser.parse(line)
            }
            // availableData returns what the pipe holds; read(upToCount:) would wait for all of it.
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffered.append(contentsOf: chunk)
        }
    }

    /// Closes stdin and waits; returns the exit status.
    public func finish() -> Int32 {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationStatus
    }
}
