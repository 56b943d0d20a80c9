import Glibc

/// Splits a worker's stream into lines, as `LineFramer` does, but goes on after a line past
/// the limit: that line is reported once and dropped up to its newline, so that one broken
/// rule (the line limit) does not hide what the worker does after it from the other checks.
struct LineSplitter {
    enum Piece {
        case line(ArraySlice<UInt8>)
        /// A line grew past the limit; `bytes` is what was seen of it when it did.
        case oversized(bytes: Int)
    }

    let limit: Int
    private var pending: [UInt8] = []
    /// Inside an over-long line: dropping bytes up to its newline.
    private var skipping = false

    init(limit: Int) { self.limit = limit }

    mutating func feed(_ bytes: ArraySlice<UInt8>, _ emit: (Piece) -> Void) {
        var rest = bytes
        while !rest.isEmpty {
            guard let newline = Self.newline(in: rest) else {
                take(rest, emit)
                return
            }
            take(rest[..<newline], emit)
            if !skipping { emitLine(emit) }
            skipping = false
            pending.removeAll(keepingCapacity: pending.count <= 65536)
            rest = rest[(newline + 1)...]
        }
    }

    /// memchr: a worker's multi-megabyte line is scanned at memory speed, also in a debug build.
    private static func newline(in bytes: ArraySlice<UInt8>) -> Int? {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress, let found = memchr(base, 0x0A, buffer.count) else { return nil }
            return bytes.startIndex + (UnsafeRawPointer(found) - UnsafeRawPointer(base))
        }
    }

    private mutating func take(_ bytes: ArraySlice<UInt8>, _ emit: (Piece) -> Void) {
        guard !skipping else { return }
        if pending.count + bytes.count > limit {
            emit(.oversized(bytes: pending.count + bytes.count))
            skipping = true
            pending = []
            return
        }
        pending.append(contentsOf: bytes)
    }

    /// "\r\n" ends a line as "\n" does; empty lines are no messages.
    private func emitLine(_ emit: (Piece) -> Void) {
        var line = pending[...]
        if line.last == 0x0D { line = line.dropLast() }
        if !line.isEmpty { emit(.line(line)) }
    }
}
