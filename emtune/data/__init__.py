"""Prompt sets for training and the benchmark registry for evaluation."""
