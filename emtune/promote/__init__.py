"""Promotion: pick the best evaluated step, decide whether its gain over the base model is real (rule), and
register it in a model registry (MLflow or Kubeflow Model Registry), moving the champion alias only on promotion."""
