"""Agreement between feature maps, and with human / planted rationales (plausibility)."""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import torch
from torch import Tensor

from xaicore.faithfulness.removal import descending_rank

__all__ = ["rank_agreement", "rationale_agreement", "precision_at_k"]


def _rows(mask: Tensor) -> Iterable[tuple[int, np.ndarray]]:
    m = mask.bool().cpu().numpy()
    for i in range(m.shape[0]):
        yield i, m[i]


def rank_agreement(a: Tensor, b: Tensor, mask: Tensor) -> dict[str, float]:
    """Mean per-example Kendall tau-b and Pearson r between two maps over ``mask`` tokens.

    Examples with fewer than two tokens or a constant map are skipped.

    Args:
        a, b: ``(B, T)`` feature maps.
        mask: ``(B, T)`` bool, tokens compared (e.g. ``batch.content_mask``).

    Returns:
        ``{"kendall_tau": float, "pearson": float, "n_examples": int}``
        (NaN means when no example qualifies).
    """
    from scipy.stats import kendalltau

    A, Bm = a.detach().double().cpu().numpy(), b.detach().double().cpu().numpy()
    taus, rs = [], []
    for i, m in _rows(mask):
        x, y = A[i][m], Bm[i][m]
        if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        taus.append(float(kendalltau(x, y).statistic))
        rs.append(float(np.corrcoef(x, y)[0, 1]))
    return {
        "kendall_tau": float(np.mean(taus)) if taus else float("nan"),
        "pearson": float(np.mean(rs)) if rs else float("nan"),
        "n_examples": len(taus),
    }


def rationale_agreement(scores: Tensor, rationale_mask: Tensor, mask: Tensor) -> dict[str, float]:
    """Plausibility: mean per-example AUPRC (average precision) and ROC-AUC of ``scores`` against a rationale.

    DeYoung et al. (2020)'s soft-score metric. Examples whose rationale is
    constant over ``mask`` (no evidence token, or all tokens evidence) are
    skipped.

    Args:
        scores: ``(B, T)`` feature map (higher = more important).
        rationale_mask: ``(B, T)`` bool evidence tokens.
        mask: ``(B, T)`` bool, tokens scored (e.g. ``batch.content_mask``).

    Returns:
        ``{"auprc": float, "roc_auc": float, "n_examples": int}``.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    S = scores.detach().double().cpu().numpy()
    R = rationale_mask.bool().cpu().numpy()
    aps, aucs = [], []
    for i, m in _rows(mask):
        y, s = R[i][m], S[i][m]
        if y.size == 0 or y.all() or not y.any():
            continue
        aps.append(float(average_precision_score(y, s)))
        aucs.append(float(roc_auc_score(y, s)))
    return {
        "auprc": float(np.mean(aps)) if aps else float("nan"),
        "roc_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "n_examples": len(aps),
    }


def precision_at_k(scores: Tensor, rationale_mask: Tensor, mask: Tensor, k: Optional[int] = None) -> Tensor:
    """Fraction of the top-``k`` tokens (by ``scores``, over ``mask``) that are rationale tokens.

    Args:
        scores: ``(B, T)`` feature map.
        rationale_mask: ``(B, T)`` bool evidence tokens.
        mask: ``(B, T)`` bool, candidate tokens.
        k: tokens per example (>= 1), clipped to the example's number of
            candidates; ``None`` = the example's number of rationale tokens
            (R-precision).

    Returns:
        ``(B,)`` float; NaN where ``k`` is 0 (no candidates, or ``k=None`` and
        no rationale token). Ties are broken by position.
    """
    m = mask.bool()
    rat = rationale_mask.bool() & m
    n = m.sum(dim=1)
    if k is None:
        kk = rat.sum(dim=1)
    else:
        if k < 1:
            raise ValueError(f"k must be >= 1 or None, got {k}")
        kk = torch.clamp(n, max=int(k))
    top = descending_rank(scores, m) < kk.unsqueeze(1)
    hits = (top & rat).sum(dim=1).float()
    out = hits / kk.float().clamp_min(1)
    return out.masked_fill(kk == 0, float("nan"))

