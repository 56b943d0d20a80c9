import PurserPluginKit

// Returns its input: the smallest routine, and the one the protocol transcripts replay.
Plugin.serve(name: "echo", version: "1.0.0") { input, _ in input }
