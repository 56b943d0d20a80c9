import Foundation
import Glibc
import PurserLedger
import PurserTestSupport
import Testing

/// The SQLite store when its files are taken, replaced or starved under it.
@Suite("SQLite store faults", .storeWork, .timeLimit(.minutes(1)))
struct StoreFaultTests {
    enum Loss: String, CaseIterable, Sendable {
        case allDeleted, databaseDeleted, walDeleted, shmDeleted, replaced, movedAway
    }

    func isStoreFailure(_ error: any Error, mentioning words: [String]) -> Bool {
        guard let error = error as? LedgerError, error.code == .storeFailed else { return false }
        return words.allSatisfy { error.message.contains($0) }
    }

    /// SQLite writes on to a file nobody can open again; the ledger must stop instead, at
    /// its next commit, and stay stopped.
    @Test(arguments: Loss.allCases)
    func aStoreWhoseFilesVanishStopsAtTheNextCommit(loss: Loss) throws {
        let path = Fixtures.temporaryHome() + "/purser.db"
        let store = try SQLiteLedger(path: path)
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        _ = try store.reserve(ReserveRequest(parent: team.id, kind: .swarm, name: "s", amounts: Resources(credits: credit)))
        switch loss {
        case .allDeleted: for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        case .databaseDeleted: unlink(path)
        case .walDeleted: unlink(path + "-wal")
        case .shmDeleted: unlink(path + "-shm")
        case .replaced:
            let other = Fixtures.temporaryHome() + "/purser.db"
            _ = try SQLiteLedger(path: other)
            rename(other, path)
        case .movedAway: rename(path, path + ".moved")
        }
        let request = ReserveRequest(parent: team.id, kind: .swarm, name: "s2", amounts: Resources(credits: credit))
        #expect { try store.reserve(request) } throws: { isStoreFailure($0, mentioning: ["deleted or replaced", path]) }
        #expect { try store.team(named: "t") } throws: { isStoreFailure($0, mentioning: ["deleted or replaced"]) }
        if loss == .allDeleted || loss == .databaseDeleted || loss == .movedAway {
            #expect(access(path, F_OK) != 0, "no new store file appears in its place")
        }
    }

    enum AtRest: String, CaseIterable, Sendable {
        case deleted, emptied
    }

    /// A store that existed is never silently made again, empty: the marker beside it says
    /// it was there, until the operator removes the marker.
    @Test(arguments: AtRest.allCases)
    func aStoreThatExistedIsNotMadeAgainEmpty(loss: AtRest) throws {
        let home = Fixtures.temporaryHome()
        let path = home + "/purser.db"
        do {
            let store = try SQLiteLedger(path: path)
            _ = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        }
        switch loss {
        case .deleted: for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        case .emptied: truncate(path, 0)
        }
        let marker = home + "/.purser.db.marker"
        #expect { try SQLiteLedger(path: path) } throws: { isStoreFailure($0, mentioning: [path, marker]) }
        if loss == .deleted { #expect(access(path, F_OK) != 0, "no empty store was made") }
        #expect(unlink(marker) == 0)
        let fresh = try SQLiteLedger(path: path)
        #expect(throws: LedgerError.self) { try fresh.team(named: "t") }
    }

    /// A store made before the marker existed gets one the next time it is opened.
    @Test func aStoreWithoutAMarkerGetsOne() throws {
        let home = Fixtures.temporaryHome()
        do { _ = try SQLiteLedger(path: home + "/purser.db") }
        #expect(unlink(home + "/.purser.db.marker") == 0)
        do { _ = try SQLiteLedger(path: home + "/purser.db") }
        #expect(access(home + "/.purser.db.marker", F_OK) == 0)
    }

    /// A full disk is named as such, whether the store is already open or opened anew.
    @Test(.enabled(if: Tmpfs.available))
    func aFullDiskIsCalledAFullDisk() throws {
        let disk = try #require(Tmpfs(megabytes: 2))
        let path = disk.path + "/purser.db"
        let store = try SQLiteLedger(path: path)
        let team = try store.createTeam(TeamSpec(name: "t", caps: Resources(credits: 10 * credit)))
        disk.fill()
        #expect {
            for index in 0..<2000 {
                _ = try store.reserve(ReserveRequest(
                    parent: team.id, kind: .swarm, name: String(repeating: "s", count: 2000) + "\(index)", amounts: Resources(credits: 1)))
            }
        } throws: { isStoreFailure($0, mentioning: ["disk full"]) }
        // A new process's connection, on a disk with no room for its WAL index.
        let other = disk.path + "/other.db"
        #expect { try SQLiteLedger(path: other) } throws: { isStoreFailure($0, mentioning: ["disk full"]) }
    }

    /// Store failures and bad input are told apart: a malformed location or a missing
    /// directory is the caller's mistake, not the store's.
    @Test func aMalformedLocationIsInvalidNotAStoreFailure() throws {
        for location in ["postgres://user@[::1/db", "postgresql://host:notaport/db", Fixtures.temporaryHome() + "/no/such/dir/purser.db"] {
            #expect { try LedgerLocation.open(location) } throws: { ($0 as? LedgerError)?.code == .invalid }
        }
    }
}
