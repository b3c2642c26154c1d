"""Benchmarks: each measures emtune against a baseline in the same process, on the same machine."""
