// The harness (local servers, commands run to their end, offPool) is a target of its own so
// that the benchmarks can use it without this module; the tests keep reaching it from here.
@_exported public import PurserHarness
