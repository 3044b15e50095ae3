"""Shuffle TVD (faithfulness-evaluation.txt section 6, after Jain & Wallace 2019's attention permutation)."""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn

from xaicore.faithfulness.weak_learner import normalize_feature_map
from xaicore.models.model_utils import eval_mode
from xaicore.models.protocol import capability
from xaicore.types import Batch

__all__ = ["total_variation", "shuffle_tvd"]


def total_variation(p: Tensor, q: Tensor) -> Tensor:
    """``TVD(p, q) = 1/2 sum_i |p_i - q_i|`` over the last dim."""
    return 0.5 * (p - q).abs().sum(dim=-1)


def _permute_among(values: Tensor, mask: Tensor, n_permutations: int, generator: Optional[torch.Generator]) -> Tensor:
    """``(P, B, T)``: ``values`` ``(B, T)`` randomly permuted among each example's ``mask`` positions."""
    P, (B, T) = n_permutations, values.shape
    keys = torch.rand((P, B, T), generator=generator).to(values.device)
    keys = keys.masked_fill(~mask.unsqueeze(0), float("inf"))
    src = keys.argsort(dim=-1)  # masked positions first, in random order
    dst = torch.sort((~mask).to(torch.int8), dim=1, stable=True).indices.unsqueeze(0).expand(P, B, T)
    vals = values.unsqueeze(0).expand(P, B, T).gather(-1, src)
    return torch.zeros_like(vals).scatter(-1, dst, vals)


def shuffle_tvd(
    model: nn.Module,
    batch: Batch,
    scores: Tensor,
    *,
    n_permutations: int = 100,
    generator: Optional[torch.Generator] = None,
    chunk_size: Optional[int] = None,
) -> Tensor:
    """Median TVD between outputs with the feature map and with a shuffled feature map (sec. 6).

    faithfulness-evaluation.txt section 6 (after Jain & Wallace 2019's
    attention permutation): ``p`` = output distribution when ``scores`` weight
    the tokens, ``q`` = the same with ``scores`` randomly permuted among the
    example's content tokens; ``TVD(p, q) = 1/2 sum_i |p_i - q_i|``; the
    median over ``n_permutations`` permutations is the example's score (the
    mean over a dataset is left to the caller, e.g. :func:`nanmean`). Higher =
    the model relies more on where the map puts its weight.

    How the map weights the tokens depends on ``model``:

    * :class:`WeakLearner` (the paper's setting): the map is its pooling
      weights (normalised inside the learner).
    * a model with additive attention (``attend``, i.e.
      :class:`~xaicore.models.AttentionLSTMClassifier`): the map replaces the
      attention distribution, ``a = |s| / sum |s|`` over content tokens
      (a zero map -> uniform), injected exactly through
      ``score_perturb = log(a) - a~`` (floor ``1e-30``); the BiLSTM is run
      once and only attention + decoder are re-run per permutation. With
      ``scores`` = the model's own attention, ``p`` is its normal output.

    Args:
        model: :class:`WeakLearner` or a model with ``attend``.
        batch: inputs ``(B, T)``.
        scores: feature map ``(B, T)``.
        n_permutations: >= 1 (paper: 100).
        generator: CPU ``torch.Generator`` for the permutations (default: the
            global RNG).
        chunk_size: permutations per forward pass (default: ``max(1, 4096 // B)``).

    Returns:
        ``(B,)`` float median TVD (the mean of the two middle values for an
        even count); 0 for examples with fewer than two content tokens.

    Raises:
        ValueError: the model offers no way to set the token weights.
    """
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    content = batch.content_mask
    B = batch.size
    chunk = chunk_size or max(1, 4096 // max(1, B))
    raw = torch.where(content, scores.detach().float(), torch.zeros_like(scores, dtype=torch.float))
    perms = _permute_among(raw, content, n_permutations, generator)  # (P, B, T)
    tvds = []
    with torch.no_grad(), eval_mode(model):
        if capability(model, "takes_token_weights"):
            def run(weights: Tensor, reps: int) -> Tensor:  # weights (reps*B, T)
                ids, mask = batch.input_ids.repeat(reps, 1), batch.attention_mask.repeat(reps, 1)
                return torch.softmax(model(ids, mask, weights=weights).logits.float(), dim=-1)
        elif capability(model, "has_attention"):
            mask = batch.attention_mask.bool()
            hidden = model.encode(model.embed(batch.input_ids), mask)  # (B, T, 2H)
            base_scores = model.attention_scores(hidden, mask)

            def run(weights: Tensor, reps: int) -> Tensor:
                a = normalize_feature_map(weights, content.repeat(reps, 1), norm="l1", absolute=True)
                perturb = torch.log(a.clamp_min(1e-30)) - base_scores.repeat(reps, 1)
                out = model.attend(
                    hidden.repeat(reps, 1, 1), mask.repeat(reps, 1),
                    scores=base_scores.repeat(reps, 1), score_perturb=perturb,
                )
                return torch.softmax(out.logits.float(), dim=-1)
        else:
            raise ValueError(
                f"shuffle_tvd needs a WeakLearner or a model with additive attention, not {type(model).__name__}"
            )
        p = run(raw, 1)  # (B, C)
        for start in range(0, n_permutations, chunk):
            block = perms[start : start + chunk]  # (P', B, T)
            reps = block.shape[0]
            q = run(block.reshape(reps * B, -1), reps).reshape(reps, B, -1)
            tvds.append(total_variation(p.unsqueeze(0), q))
    tvd = torch.cat(tvds, dim=0)  # (P, B)
    return torch.quantile(tvd, 0.5, dim=0)

