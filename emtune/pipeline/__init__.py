"""The KFP pipeline's library side: its config section, parameters, step adapters and local runs."""
