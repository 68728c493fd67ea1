"""Benchmark scripts (run them with `make bench-serve` and `make bench-train`)."""
