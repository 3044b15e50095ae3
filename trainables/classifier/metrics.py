"""What the ``classifier`` trainable reports and its smoke-test overrides (torch-free: checking a spec
imports this module only). The trial names its results with the same constants and functions."""
from __future__ import annotations

from typing import Any, Mapping

from trainables.loop_metrics import CLASSIFICATION_METRICS, TRAIN_STATS, best_metric, split_metric, train_metric

#: the evaluation metrics of every split (:func:`xaicore.metrics.classification_metrics`), the choices of
#: ``selection_metric``
METRIC_KEYS = CLASSIFICATION_METRICS
#: Pearson of attention vs gradient importance (``correlation``,
#: :func:`xaicore.metrics.attention_gradient_correlations`): the mean of per-sentence values and pooled over
#: all tokens, ``<split>/corr`` and ``<split>/corr_pooled``
CORR_KEYS = ("corr", "corr_pooled")
#: Corr. on the test set, for the selected epoch's weights
CORR, CORR_POOLED = (split_metric("test", k) for k in CORR_KEYS)
#: the epoch ``corr_epoch`` measured at (the last one when ``corr_epoch > epochs``)
FIXED_EPOCH = "fixed/epoch"
#: what :func:`fixed_metric` measures at ``corr_epoch``: the test metrics and both Corr.s
FIXED_KEYS = METRIC_KEYS + CORR_KEYS
#: attention weights vs a split's human rationales (ERASER soft-token scores,
#: :func:`xaicore.faithfulness.rationale_metrics.eraser_soft_token_scores`, and the documents they cover):
#: ``<split>/rationale_<score>`` (:func:`rationale_metric`), ``<split>/rationale_documents``
RATIONALE_SCORES = ("auprc", "avg_precision", "roc_auc")
RATIONALE_DOCUMENTS_KEY = "rationale_documents"
#: the test set's, once, for the selected epoch's weights
RATIONALE_DOCUMENTS = split_metric("test", RATIONALE_DOCUMENTS_KEY)


def rationale_key(score: str) -> str:
    """``rationale_<score>``: the key of a score of :data:`RATIONALE_SCORES` among a split's metrics."""
    return f"rationale_{score}"


def rationale_metric(score: str, split: str = "test") -> str:
    """``<split>/rationale_<score>``: a score of :data:`RATIONALE_SCORES` on the ``valid`` or ``test`` split."""
    return split_metric(split, rationale_key(score))


def fixed_metric(key: str) -> str:
    """``fixed/test_<key>``: ``key`` of :data:`FIXED_KEYS` at the fixed epoch ``corr_epoch``."""
    return f"fixed/test_{key}"


#: the interpretability metrics of the validation split, every epoch, for that epoch's weights, besides
#: :data:`METRIC_KEYS` (``valid/<key>``: Corr. with ``correlation: true``, the rationale scores where the
#: validation split has rationales). Each is also reported at the selected epoch as ``best/valid_<key>``
#: (the epoch ``selection_metric`` picks, whose weights give ``test/*``; not monotone), so that a sweep
#: selects models on interpretability without reading test data
VALID_INTERPRETABILITY = CORR_KEYS + tuple(rationale_key(s) for s in RATIONALE_SCORES)
#: how many validation documents the rationale scores cover (every epoch, with them)
VALID_RATIONALE_DOCUMENTS = split_metric("valid", RATIONALE_DOCUMENTS_KEY)

METRICS = tuple(
    [split_metric(split, m) for split in ("valid", "test") for m in METRIC_KEYS]
    + [CORR, CORR_POOLED] + [train_metric(s) for s in TRAIN_STATS]
    + [best_metric("valid", m) for m in METRIC_KEYS]
    + [rationale_metric(s) for s in RATIONALE_SCORES] + [RATIONALE_DOCUMENTS]
    + [split_metric("valid", k) for k in VALID_INTERPRETABILITY] + [VALID_RATIONALE_DOCUMENTS]
    + [best_metric("valid", k) for k in VALID_INTERPRETABILITY]
    + [FIXED_EPOCH] + [fixed_metric(k) for k in FIXED_KEYS]
)
SMOKE = {"epochs": 1, "synthetic_size": 200, "max_train_examples": 200}
#: the metrics that only a trial with ``correlation: true`` reports
CORRELATION_METRICS = frozenset(
    [CORR, CORR_POOLED] + [fixed_metric(k) for k in CORR_KEYS]
    + [f(*args) for k in CORR_KEYS for f, args in ((split_metric, ("valid", k)), (best_metric, ("valid", k)))])


def metric_problems(metric: str, config: Mapping[str, Any]) -> list[str]:
    """Why a trial of ``config`` (a raw config mapping) would never report the declared ``metric``: one line per
    problem, ``[]`` when it does (checked for every point of a search space before Ray starts)."""
    if metric in CORRELATION_METRICS and not config.get("correlation", True):
        return [f"metric: {metric!r} is measured only with correlation: true (the config sets correlation: false)"]
    return []
