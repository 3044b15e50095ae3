"""What the ``finetune`` trainable reports and its smoke-test overrides (torch-free: checking a spec
imports this module only). The trial names its results with the same constants and functions."""
from __future__ import annotations

from trainables.loop_metrics import CLASSIFICATION_METRICS, TRAIN_STATS, best_metric, split_metric, train_metric

#: the choices of ``selection_metric``
METRIC_KEYS = ("accuracy", "f1", "roc_auc")
#: the ANLI rounds a split name may carry (:func:`trainables.finetune.config.round_of`)
ROUNDS = ("A1", "A2", "A3")
#: the per-step statistics of the SMART and similar-word noise regularisers (:mod:`xaicore.perturbation.smart`,
#: :mod:`xaicore.perturbation.noise`), ``train/<stat>``
NOISE_STATS = ("noise_ratio", "frac_changed")


def round_accuracy(round_name: str) -> str:
    """``accuracy_<round>``: the accuracy over the examples of one ANLI round of an evaluated split."""
    return f"accuracy_{round_name}"


METRICS = tuple(
    [split_metric(split, m) for split in ("valid", "test") for m in CLASSIFICATION_METRICS]
    + [split_metric(split, round_accuracy(r)) for split in ("valid", "test") for r in ROUNDS]
    + [train_metric(s) for s in TRAIN_STATS + NOISE_STATS]
    + [best_metric("valid", m) for m in METRIC_KEYS]
)
SMOKE = {"epochs": 1, "max_train_examples": 32, "max_eval_examples": 32, "max_length": 64, "batch_size": 8,
         "synthetic_size": 64}
