"""Benchmarks: `vla bench <what>` prints JSON. Timing targets live here, never in tests."""
