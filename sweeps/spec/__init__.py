"""Sweep specs: the YAML format, parsed and validated by pure functions (no Ray, MLflow or Optuna)."""
