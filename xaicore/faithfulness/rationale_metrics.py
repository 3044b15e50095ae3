"""Agreement of token scores (e.g. attention weights) with human rationales, as in Table 2 of
attention-vat.txt, which follows the ERASER benchmark (DeYoung et al. 2020) "soft token" scores.

Conventions (each *per document*, then averaged over documents, as ERASER's ``score_soft_tokens``):

* ``auprc``: the trapezoidal area under the precision-recall curve, i.e. sklearn's
  ``auc(recall, precision)`` over ``precision_recall_curve`` (every distinct score is a threshold,
  the point (recall 0, precision 1) is appended). This is **not** average precision.
* ``avg_precision``: average precision, ``sum_n (R_n - R_{n-1}) P_n`` (step interpolation,
  sklearn's ``average_precision_score``).
* ``roc_auc``: the ROC area (Mann-Whitney, ties 1/2; :func:`xaicore.metrics.binary_roc_auc`).

A document with no rationale token is skipped by all three; one whose tokens are all rationale
is skipped by ``roc_auc`` only (no negative). The scores are NumPy only;
:func:`attention_rationale_scores` runs a model over batches to collect the documents.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import torch
from torch import nn

from xaicore.metrics import binary_roc_auc
from xaicore.models.protocol import forward_batch
from xaicore.types import Batch


def precision_recall_points(is_rationale: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(precision, recall)`` at every distinct score threshold, recall decreasing, ending at (1, 0)."""
    y = np.asarray(is_rationale, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # last index of each run of equal scores
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0]


def trapezoidal_auprc(is_rationale: np.ndarray, scores: np.ndarray) -> float:
    """ERASER's AUPRC of one document (see module docstring); NaN without a rationale token."""
    if not np.asarray(is_rationale, dtype=bool).any():
        return float("nan")
    precision, recall = precision_recall_points(is_rationale, scores)
    return float(-np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2.0))  # recall decreases


def average_precision(is_rationale: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of one document; NaN without a rationale token."""
    if not np.asarray(is_rationale, dtype=bool).any():
        return float("nan")
    precision, recall = precision_recall_points(is_rationale, scores)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def eraser_soft_token_scores(documents: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Mean over documents of ``auprc``, ``avg_precision`` and ``roc_auc`` (module docstring).

    Args:
        documents: ``(is_rationale (T,), scores (T,))`` per document, real tokens only.

    Returns:
        ``{"auprc", "avg_precision", "roc_auc", "n_documents"}``.
    """
    auprc, ap, auc = [], [], []
    for truth, scores in documents:
        truth = np.asarray(truth, dtype=bool)
        if not truth.any():
            continue
        auprc.append(trapezoidal_auprc(truth, scores))
        ap.append(average_precision(truth, scores))
        if not truth.all():
            auc.append(binary_roc_auc(truth, scores))
    mean = lambda v: float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {"auprc": mean(auprc), "avg_precision": mean(ap), "roc_auc": mean(auc), "n_documents": len(auprc)}


def attention_rationale_scores(
    model: nn.Module, batches: Iterable[Batch], device: torch.device | str | None = None
) -> Optional[dict[str, float]]:
    """:func:`eraser_soft_token_scores` of the model's attention weights against the batches' human
    rationales (``batch.rationale_mask``), one document per example, over its content tokens
    (``batch.content_mask``: padding and special tokens left out).

    Eval mode (the model's mode is restored), no gradient, fp32 (autocast off).

    Returns:
        ``{"auprc", "avg_precision", "roc_auc", "n_documents"}``, or ``None`` when a batch has no
        rationale mask (the split carries no rationales) or there is no batch.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    docs = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            for batch in batches:
                if batch.rationale_mask is None:
                    return None
                batch = batch.to(device)
                attention = forward_batch(model, batch).attention.float().cpu().numpy()
                mask, rationale = batch.content_mask.cpu().numpy(), batch.rationale_mask.cpu().numpy()
                docs.extend((rationale[i][mask[i]].astype(bool), attention[i][mask[i]]) for i in range(batch.size))
    finally:
        model.train(was_training)
    return eraser_soft_token_scores(docs) if docs else None
