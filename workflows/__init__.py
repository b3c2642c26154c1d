"""KFP pipeline definitions and their compiled YAML."""
