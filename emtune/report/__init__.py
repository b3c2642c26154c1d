"""Reports: the benchmark × checkpoint table, accuracy- and entropy-vs-step plots, logit-shift statistics."""
