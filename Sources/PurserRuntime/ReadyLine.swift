import HeapModule

/// Ready routines in the order a policy serves them, as a heap of fixed ranks: taking the
/// first costs a logarithm, not a sort of every ready routine at every step. A routine
/// that leaves the line from the middle (a queue timeout, a stop) is not searched for: its
/// entry is dropped when it comes to the top, recognised by its generation.
struct ReadyLine {
    private struct Entry: Comparable {
        var rank: AdmissionRank
        var name: String
        var generation: Int

        static func < (a: Entry, b: Entry) -> Bool {
            a.rank != b.rank ? a.rank < b.rank : a.generation < b.generation
        }

        static func == (a: Entry, b: Entry) -> Bool { a.rank == b.rank && a.generation == b.generation }
    }

    private var heap = Heap<Entry>()

    mutating func insert(_ name: String, rank: AdmissionRank, generation: Int) {
        heap.insert(Entry(rank: rank, name: name, generation: generation))
    }

    /// The first in line whose entry is `current`; those that are not are dropped.
    mutating func first(current: (String, Int) -> Bool) -> String? {
        while let top = heap.min {
            if current(top.name, top.generation) { return top.name }
            heap.removeMin()
        }
        return nil
    }

    /// The first `count` in line, in order, left in line.
    mutating func prefix(_ count: Int, current: (String, Int) -> Bool) -> [String] {
        var taken: [Entry] = []
        while taken.count < count, let top = heap.popMin() {
            if current(top.name, top.generation) { taken.append(top) }
        }
        heap.insert(contentsOf: taken)
        return taken.map(\.name)
    }
}
