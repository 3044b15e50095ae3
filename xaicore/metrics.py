"""Classification metrics and the attention/gradient agreement ("Corr.").

All functions are pure: they take predictions and return Python floats.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import torch
from torch import Tensor, nn

from xaicore.models.protocol import forward_batch
from xaicore.types import Batch


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact matches."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else float("nan")


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: Optional[int] = None) -> float:
    """Unweighted mean over classes of F1 (a class absent from both gives F1 = 0 only if predicted)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = range(num_classes) if num_classes else np.union1d(y_true, y_pred)
    scores = []
    for c in classes:
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else float("nan")


def binary_roc_auc(is_positive: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the boolean labels ``is_positive`` ``(N,)``.

    Computed as the Mann-Whitney statistic: the probability that a random
    positive scores above a random negative, ties counting 1/2 (average ranks),
    which equals the trapezoidal ROC area (sklearn's ``roc_auc_score``). NaN
    when there is no positive or no negative. NumPy only: importing sklearn
    costs ~2 s in every fresh trial process.
    """
    pos = np.asarray(is_positive, dtype=bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # average rank (1-based) of each run of tied scores
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], len(scores)]
    run_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(run_rank, ends - starts)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def binary_f1(y_true: np.ndarray, y_pred: np.ndarray, positive: int = 1) -> float:
    """F1 of the ``positive`` class alone (AllenNLP ``F1Measure(positive_label=1)``, the F1 that
    Jain & Wallace and Kitada & Iyatomi report); 0 when the class is never predicted nor present."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    tp = np.sum((y_pred == positive) & (y_true == positive))
    fp = np.sum((y_pred == positive) & (y_true != positive))
    fn = np.sum((y_pred != positive) & (y_true == positive))
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0


def roc_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """ROC-AUC: binary uses ``probs[:, 1]``; multi-class is the macro one-vs-rest mean
    over the classes present (see :func:`binary_roc_auc`).

    Returns NaN when ``y_true`` holds fewer than two classes.
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs)
    if len(np.unique(y_true)) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return binary_roc_auc(y_true == 1, probs[:, 1])
    present = np.unique(y_true)
    return float(np.mean([binary_roc_auc(y_true == c, probs[:, c]) for c in present]))


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """``accuracy``, ``f1`` (macro), ``roc_auc`` and, for two classes, ``f1_pos`` (F1 of class 1,
    the paper's F1) from labels ``(N,)`` and probabilities ``(N, C)``."""
    y_pred = np.asarray(probs).argmax(axis=1)
    out = {
        "accuracy": accuracy(y_true, y_pred),
        "f1": macro_f1(y_true, y_pred, num_classes=np.asarray(probs).shape[1]),
        "roc_auc": roc_auc(y_true, probs),
    }
    if np.asarray(probs).shape[1] == 2:
        out["f1_pos"] = binary_f1(y_true, y_pred, 1)
    return out


@torch.no_grad()
def predict(model: nn.Module, batches: Iterable[Batch], device: torch.device | str | None = None):
    """Run ``model`` in eval mode over ``batches``.

    Returns:
        ``(labels (N,), probs (N, C))`` as numpy arrays; labels are -1 for
        unlabeled batches. Row ``i`` is the example at dataset position ``i``
        when the batches' ``index`` together are a permutation of ``0..N-1``
        (e.g. length-sorted evaluation batches), else rows are in batch order.
        The model's previous train/eval mode is restored.
    """
    was_training = model.training
    model.eval()
    device = device or next(model.parameters()).device
    labels, probs, index = [], [], []
    try:
        for batch in batches:
            index.append(batch.index)
            batch = batch.to(device)
            out = forward_batch(model, batch)
            probs.append(torch.softmax(out.logits.float(), dim=-1).cpu())
            lab = batch.labels if batch.labels is not None else torch.full((batch.size,), -1)
            labels.append(lab.cpu())
    finally:
        model.train(was_training)
    labels_np, probs_np = torch.cat(labels).numpy(), torch.cat(probs).numpy()
    if index and all(i is not None for i in index):
        idx = torch.cat([i.cpu() for i in index]).numpy()
        order = np.argsort(idx, kind="stable")
        if np.array_equal(idx[order], np.arange(len(idx))):  # a permutation of the dataset: its order
            labels_np, probs_np = labels_np[order], probs_np[order]
    return labels_np, probs_np


def pearson(x: Tensor, y: Tensor) -> float:
    """Pearson correlation of two 1-D tensors; NaN if either is constant."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = x.norm() * y.norm()
    return float((x @ y) / denom) if denom > 0 else float("nan")


def gradient_importance(model: nn.Module, batch: Batch) -> Tensor:
    """Jain & Wallace's gradient-based token importance, as used for "Corr." in attention-vat.txt.

    ``tau_t = | sum_e (d p_yhat / d e_{t,e}) * e_{t,e} |`` - the gradient of the
    predicted class's probability w.r.t. the one-hot input of token ``t``
    (= gradient x word embedding), with the attention weights *detached* so
    the gradient does not flow through the attention module; normalised to sum
    1 over real tokens. It is :func:`xaicore.faithfulness.attribution.input_x_gradient`
    with ``output="prob"`` and ``detach_attention=True``, in absolute value
    (eval mode; the caller's ``.grad`` fields are untouched).

    Returns:
        ``(B, T)`` importance, 0 on padding.
    """
    from xaicore.faithfulness.attribution import input_x_gradient

    tau = input_x_gradient(model, batch, output="prob", detach_attention=True).abs()  # (B, T)
    return tau / tau.sum(dim=1, keepdim=True).clamp_min(1e-12)


def attention_and_gradient_importance(model: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """The attention weights and :func:`gradient_importance` of ``batch`` from one forward and one
    backward pass (instead of the three forwards of ``forward_batch`` + ``gradient_importance``).

    The forward pools with detached attention weights (``detach_attention=True``), which changes the
    gradient but not the weights themselves; the target is the predicted class of that forward.
    The model must be in eval mode (the caller's; no dropout); parameter ``.grad`` fields are untouched.

    Returns:
        ``(attention (B, T), tau (B, T))``, both detached; ``tau`` is 0 outside the content mask and
        sums to 1 over it (as :func:`gradient_importance`).

    Raises:
        ValueError: the model returns no attention weights.
    """
    with torch.enable_grad():
        emb = model.embed(batch.input_ids).detach().requires_grad_(True)  # (B, T, E)
        out = forward_batch(model, batch, inputs_embeds=emb, detach_attention=True)
        if out.attention is None:
            raise ValueError("attention_gradient_correlation needs a model with attention weights")
        target = out.logits.detach().argmax(dim=-1)  # (B,) the predicted class
        chosen = torch.softmax(out.logits, dim=-1).gather(1, target.unsqueeze(1)).sum()
        (grad,) = torch.autograd.grad(chosen, emb)
    scores = (emb.detach() * grad).sum(dim=-1).float()  # (B, T) signed input x gradient
    tau = torch.where(batch.content_mask, scores, torch.zeros_like(scores)).abs()
    return out.attention.detach(), tau / tau.sum(dim=1, keepdim=True).clamp_min(1e-12)


def attention_gradient_correlations(
    model: nn.Module, batches: Iterable[Batch], device: torch.device | str | None = None
) -> dict[str, float]:
    """Pearson(attention weights, :func:`gradient_importance`), the "Corr." of attention-vat.txt Table 1,
    in the two conventions the paper leaves open.

    * ``mean``: the mean over sentences of each sentence's Pearson over its real (non-special)
      tokens (Jain & Wallace's per-instance convention);
    * ``pooled``: one Pearson over the concatenation of every sentence's real tokens.

    Both use the same sentences: those with at least two real tokens (a one-token sentence has
    attention 1 and importance 1 whatever the model, which would inflate the pooled value);
    ``mean`` also skips sentences where either vector is constant. Eval mode (the model's mode is
    restored) and fp32 (autocast off whatever the caller's context), one forward and one backward
    pass per batch (:func:`attention_and_gradient_importance`); the values do not depend on how the
    sentences are batched.

    Returns:
        ``{"mean": float, "pooled": float}`` (NaN when no sentence qualifies).
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    values, all_attn, all_tau = [], [], []
    try:
        with torch.autocast(device.type, enabled=False):
            for batch in batches:
                batch = batch.to(device)
                attn, tau = attention_and_gradient_importance(model, batch)
                attn, tau, mask = attn.float().cpu(), tau.cpu(), batch.content_mask.cpu()
                for i in range(batch.size):
                    m = mask[i]
                    if int(m.sum()) < 2:
                        continue
                    all_attn.append(attn[i][m])
                    all_tau.append(tau[i][m])
                    r = pearson(all_attn[-1], all_tau[-1])
                    if r == r:  # not NaN
                        values.append(r)
    finally:
        model.train(was_training)
    pooled = pearson(torch.cat(all_attn), torch.cat(all_tau)) if all_attn else float("nan")
    return {"mean": float(np.mean(values)) if values else float("nan"), "pooled": pooled}


def attention_gradient_correlation(
    model: nn.Module, batches: Iterable[Batch], device: torch.device | str | None = None
) -> float:
    """Mean over sentences of Pearson(attention, gradient importance): the ``mean`` of
    :func:`attention_gradient_correlations`."""
    return attention_gradient_correlations(model, batches, device)["mean"]
