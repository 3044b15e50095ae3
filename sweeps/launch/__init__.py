"""Everything between a parsed spec and Ray Tune: pre-Ray checks, the Optuna search space, the MLflow parent run and trial-run bookkeeping, the sweep lock and fingerprint, warm starts."""
