"""emtune: entropy-minimisation fine-tuning, from a laptop CPU to Kubeflow on GPU pods."""

__version__ = "0.2.0"
