"""Sweep specifications and their conversion into Ray Tune / Optuna objects."""
