/// Splits a byte stream into lines, refusing any line longer than `maxLineBytes` without
/// buffering more than that much.
public struct LineFramer: Sendable {
    public enum Event: Sendable {
        case line(ArraySlice<UInt8>)
        /// A line grew past the limit; the stream cannot be trusted after this.
        case oversized
    }

    public let maxLineBytes: Int
    private var pending: [UInt8] = []
    private var failed = false

    public init(maxLineBytes: Int = defaultMaxLineBytes) {
        self.maxLineBytes = maxLineBytes
    }

    public mutating func feed(_ chunk: UnsafeRawBufferPointer, _ emit: (Event) -> Void) {
        guard !failed else { return }
        var start = 0
        let bytes = chunk.bindMemory(to: UInt8.self)
        while start < bytes.count {
            guard let newline = bytes[start...].firstIndex(of: 0x0A) else {
                pending.append(contentsOf: bytes[start...])
                if pending.count > maxLineBytes { fail(emit) }
                return
            }
            if pending.isEmpty {
                if newline - start > maxLineBytes { return fail(emit) }
                emitLine(Array(bytes[start..<newline])[...], emit)
            } else {
                pending.append(contentsOf: bytes[start..<newline])
                if pending.count > maxLineBytes { return fail(emit) }
                emitLine(pending[...], emit)
                pending.removeAll(keepingCapacity: pending.count <= 65536)
            }
            start = newline + 1
        }
    }

    private mutating func fail(_ emit: (Event) -> Void) {
        failed = true
        pending = []
        emit(.oversized)
    }

    private func emitLine(_ line: ArraySlice<UInt8>, _ emit: (Event) -> Void) {
        var line = line
        if line.last == 0x0D { line = line.dropLast() }
        if !line.isEmpty { emit(.line(line)) }
    }
}
