"""Benchmark evaluation: generation backends, grading, metrics."""
