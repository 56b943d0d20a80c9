import PurserPluginKit

// A plugin that print()s, as plugin code will: PluginKit must keep that off the protocol.
print("noisy: starting up")
Plugin.serve(name: "noisy", version: "1.0.0") { input, _ in
    print("noisy: got \(input.serialized())")
    return input
}
