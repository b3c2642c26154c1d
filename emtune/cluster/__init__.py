"""Running emtune on Kubernetes: container images, multi-node TrainJobs, pipeline submission to KFP."""
