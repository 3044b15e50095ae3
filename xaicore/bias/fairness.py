"""Gender bias of a classifier: per-class TPR gap and its correlation with the female rate (cancel-out.txt eq. 2).

De-Arteaga et al. (2019), as cancel-out.txt section 4 uses it::

    TPR_{g,y} = P(Y' = y | G = g, Y = y)
    Gap_{f,y} = TPR_{f,y} - TPR_{m,y}

and the Pearson correlation (two-sided p-value, scipy's ``pearsonr``) across
professions between ``Gap_{f,y}`` and the *training* female rate of ``y``
(Table 2, Fig. 7). A profession without a test example of either gender has
no gap (NaN) and is left out of the correlation.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["tpr_gap", "female_rate", "gap_correlation"]


def _gender_masks(genders: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray([str(x).lower() for x in genders])
    female = np.isin(g, ("f", "female", "woman", "1"))
    male = np.isin(g, ("m", "male", "man", "0"))
    if not (female | male).all():
        bad = sorted(set(g[~(female | male)].tolist()))[:5]
        raise ValueError(f"gender values must be f/female or m/male, got {bad}")
    return female, male


def tpr_gap(labels: Sequence[int], preds: Sequence[int], genders: Sequence[str], num_classes: int) -> dict:
    """Per class ``y``: ``tpr_f``, ``tpr_m``, ``gap`` = ``tpr_f - tpr_m`` (NaN where a gender has no example of ``y``).

    Returns:
        ``{"tpr_f": (C,), "tpr_m": (C,), "gap": (C,), "n_f": (C,), "n_m": (C,)}`` NumPy arrays.
    """
    y, p = np.asarray(labels), np.asarray(preds)
    female, male = _gender_masks(genders)
    out = {k: np.full(num_classes, np.nan) for k in ("tpr_f", "tpr_m", "gap")}
    out["n_f"], out["n_m"] = np.zeros(num_classes, int), np.zeros(num_classes, int)
    for c in range(num_classes):
        for g, mask in (("f", female), ("m", male)):
            sel = (y == c) & mask
            out[f"n_{g}"][c] = int(sel.sum())
            if sel.any():
                out[f"tpr_{g}"][c] = float((p[sel] == c).mean())
    out["gap"] = out["tpr_f"] - out["tpr_m"]
    return out


def female_rate(labels: Sequence[int], genders: Sequence[str], num_classes: int) -> np.ndarray:
    """``(C,)`` share of female examples per class (NaN for a class without examples)."""
    y = np.asarray(labels)
    female, _ = _gender_masks(genders)
    return np.array([female[y == c].mean() if (y == c).any() else np.nan for c in range(num_classes)])


def gap_correlation(gap: Sequence[float], rate: Sequence[float]) -> dict:
    """Pearson r and two-sided p-value between per-class gaps and female rates (NaN classes dropped).

    Returns:
        ``{"r", "p_value", "n_classes"}``; r and p are NaN with fewer than 3 classes or a constant input.
    """
    from scipy.stats import pearsonr

    g, r = np.asarray(gap, float), np.asarray(rate, float)
    ok = ~(np.isnan(g) | np.isnan(r))
    if ok.sum() < 3 or np.ptp(g[ok]) == 0 or np.ptp(r[ok]) == 0:
        return {"r": float("nan"), "p_value": float("nan"), "n_classes": int(ok.sum())}
    res = pearsonr(g[ok], r[ok])
    return {"r": float(res.statistic), "p_value": float(res.pvalue), "n_classes": int(ok.sum())}
