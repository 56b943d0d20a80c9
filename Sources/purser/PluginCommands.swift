import ArgumentParser
import Foundation
import PurserAPI
import PurserConfig
import PurserLedger
import PurserProtocol
import PurserRuntime

struct PluginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugin", abstract: "Register routine executables as plugins, pinned by SHA-256.",
        subcommands: [Add.self, List.self, Show.self, Remove.self, Verify.self])

    static func registry(_ options: LedgerOptions) throws -> PluginRegistry {
        do {
            return try PluginRegistry(runtime: options.runtime())
        } catch let error as RuntimeError {
            throw commandFailure(error)
        }
    }

    /// `--manifest PATH`, loaded; its errors name the option and the file's line.
    static func manifest(_ path: String?) throws -> PluginManifest? {
        do {
            return try path.map { path throws(ConfigError) in try PluginManifest.load(path: path) }
        } catch {
            throw CommandLineError(message: "--manifest: \(error)")
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Pin an executable's SHA-256, check its initialize handshake, and record it.",
            discussion: "Adding the same file again changes nothing; adding a changed file re-pins it.")

        @Argument(help: "The executable.") var path: String
        @Option(help: "The name to register it under (default: the manifest's, else the name it gives in initialize).")
        var name: String?
        @Option(help: "A manifest (YAML or JSON): reservation default and max, tools, environment, trusted, deterministic.")
        var manifest: String?
        @OptionGroup var ledgerOptions: LedgerOptions

        @OptionGroup var sandboxOptions: SandboxOptions
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let declared = try PluginCommand.manifest(manifest)
            let registry = try PluginCommand.registry(ledgerOptions)
            do {
                let (record, added) = try await registry.add(
                    path: path, name: name, manifest: declared, allowDegraded: sandboxOptions.allowDegraded)
                Runtime.finishCleanup()
                if json {
                    var object = record.json.objectValue ?? [:]
                    object["result"] = .string(added.rawValue)
                    object["notStored"] = try registry.whyNotStored(record).map(JSONValue.string) ?? .null
                    print(JSONValue.object(object).serialized())
                } else {
                    print("\(added.rawValue): \(record.name) → \(record.path) (sha256 \(record.sha256.prefix(16))…)")
                    print(try registry.whyNotStored(record).map { "not in the store: " + $0 } ?? "its file is in the store: hosts that lack it fetch it by digest")
                }
            } catch {
                throw commandFailure(error)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Registered plugins.")
        @OptionGroup var ledgerOptions: LedgerOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let records = try runtimeCall { try PluginCommand.registry(ledgerOptions).list() }
            if json { return print(JSONValue.array(records.map(\.json)).serialized()) }
            if records.isEmpty { print("no plugins registered") }
            for record in records { print("\(record.name.padding(toLength: 20, withPad: " ", startingAt: 0)) \(record.sha256.prefix(16))…  \(record.path)") }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One registered plugin.")
        @Argument var name: String
        @OptionGroup var ledgerOptions: LedgerOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            guard let record = try runtimeCall({ try PluginCommand.registry(ledgerOptions).find(name) }) else {
                throw CommandLineError(message: "no plugin named \(name) is registered")
            }
            let described = record.json
            if json { return print(described.serialized()) }
            for (key, value) in (described.objectValue ?? [:]).sorted(by: { $0.key < $1.key }) {
                print("\(key): \(value.stringValue ?? value.serialized())")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget a registered plugin.")
        @Argument var name: String
        @OptionGroup var ledgerOptions: LedgerOptions

        func run() throws {
            guard try runtimeCall({ try PluginCommand.registry(ledgerOptions).remove(name) }) else {
                throw CommandLineError(message: "no plugin named \(name) is registered")
            }
            print("removed \(name)")
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every registered plugin's file against its pin (exit 1 if any changed or is gone).")
        @OptionGroup var ledgerOptions: LedgerOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            let results = try runtimeCall { try PluginCommand.registry(ledgerOptions).verify() }
            if json {
                print(JSONValue.array(results.map { record, problem in
                    ["name": .string(record.name), "ok": .bool(problem == nil), "problem": problem.map(JSONValue.string) ?? .null]
                }).serialized())
            } else {
                for (record, problem) in results { print("\(record.name): \(problem ?? "ok")") }
            }
            if results.contains(where: { $0.1 != nil }) { throw ExitCode(1) }
        }
    }
}

/// Runs a runtime call; its errors are bad input (exit 2), or the supervisor's failure
/// (exit 1), with the runtime's message.
func runtimeCall<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as RuntimeError {
        throw commandFailure(error)
    }
}
