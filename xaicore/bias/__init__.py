"""Gender bias: Bias in Bios data and the fairness metrics (TPR gap)."""
