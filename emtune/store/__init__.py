"""Checkpoint stores: local folders and S3, with integrity manifests."""
