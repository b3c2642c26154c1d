"""Running the pipeline: here with kfp.local, or on a cluster through KFP (submission, registration)."""
