"""Reading sweeps back from MLflow: ``best`` and ``reproduce``, and ``report`` (figures, the paper table)."""
