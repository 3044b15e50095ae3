"""What the ``classifier`` trainable reports and its smoke-test overrides (torch-free: checking a spec
imports this module only). The trial names its results with the same constants and functions."""
from __future__ import annotations

from trainables.loop_metrics import CLASSIFICATION_METRICS, TRAIN_STATS, best_metric, split_metric, train_metric

#: the evaluation metrics of every split (:func:`xaicore.metrics.classification_metrics`), the choices of
#: ``selection_metric``
METRIC_KEYS = CLASSIFICATION_METRICS
#: Pearson of attention vs gradient importance on the test set (``correlation``): the mean of
#: per-sentence values and pooled over all tokens
CORR, CORR_POOLED = "test/corr", "test/corr_pooled"
#: the epoch ``corr_epoch`` measured at (the last one when ``corr_epoch > epochs``)
FIXED_EPOCH = "fixed/epoch"
#: what :func:`fixed_metric` measures at ``corr_epoch``: the test metrics and both Corr.s
FIXED_KEYS = METRIC_KEYS + ("corr", "corr_pooled")
#: attention weights vs the test set's human rationales (ERASER soft-token scores,
#: :func:`xaicore.faithfulness.rationale_metrics.eraser_soft_token_scores`, and the documents they cover)
RATIONALE_SCORES = ("auprc", "avg_precision", "roc_auc")
RATIONALE_DOCUMENTS = "test/rationale_documents"


def fixed_metric(key: str) -> str:
    """``fixed/test_<key>``: ``key`` of :data:`FIXED_KEYS` at the fixed epoch ``corr_epoch``."""
    return f"fixed/test_{key}"


def rationale_metric(score: str) -> str:
    """``test/rationale_<score>``: a score of :data:`RATIONALE_SCORES`."""
    return f"test/rationale_{score}"


METRICS = tuple(
    [split_metric(split, m) for split in ("valid", "test") for m in METRIC_KEYS]
    + [CORR, CORR_POOLED] + [train_metric(s) for s in TRAIN_STATS]
    + [best_metric("valid", m) for m in METRIC_KEYS]
    + [rationale_metric(s) for s in RATIONALE_SCORES] + [RATIONALE_DOCUMENTS]
    + [FIXED_EPOCH] + [fixed_metric(k) for k in FIXED_KEYS]
)
SMOKE = {"epochs": 1, "synthetic_size": 200, "max_train_examples": 200}
