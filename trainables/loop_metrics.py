"""Names of the metrics the shared epoch loop reports (:func:`trainables.protocol.fit_epochs` and
:func:`trainables.protocol.fit_and_report`), and the functions that build them.

Torch-free: every trainable package declares what it reports in its own ``metrics.py`` from these
names without importing torch, so checking a sweep spec (``import trainables``) stays fast; the loop
itself (:func:`trainables.protocol.epoch_metrics`) names its results with the same functions.
"""
from __future__ import annotations

#: the per-epoch training statistics of :class:`xaicore.training.Trainer` (the mean ``loss``, the
#: ``ce`` / ``reg`` parts of the loss function, ``step_time``, the last ``lr``, ``pad_efficiency``:
#: real / padded tokens over the epoch's training batches, and, with ``compile: true`` only,
#: ``recompiles``: the graphs torch.compile compiled during the epoch's steps and evaluation),
#: ``train/<stat>``; a regulariser or loss function may add its own (a trainable declares those with its metrics)
TRAIN_STATS = ("loss", "ce", "reg", "step_time", "lr", "pad_efficiency", "recompiles")
#: the keys of :func:`xaicore.metrics.classification_metrics` (``f1_pos``: two classes only)
CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "f1_pos")


def train_metric(stat: str) -> str:
    """``train/<stat>``: a training statistic of the epoch."""
    return f"train/{stat}"


def split_metric(split: str, metric: str) -> str:
    """``<split>/<metric>``: an evaluation metric of a split (``valid``, ``test``, ``heldout``)."""
    return f"{split}/{metric}"


def best_metric(split: str, metric: str) -> str:
    """``best/<split>_<metric>``: the running best of the selection metric (monotone: safe for ASHA); for any
    other metric, its value at the epoch the selection metric picked (not monotone)."""
    return f"best/{split}_{metric}"
