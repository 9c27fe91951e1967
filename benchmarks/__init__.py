"""Benchmark scripts of AU-MLT (speed, memory, learning quality, attention); results in docs/benchmarks.md."""
