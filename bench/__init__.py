"""Benchmarks: metercom side by side with its peers, reported as ratios (run with `make bench`)."""
