"""Similar-word embedding noise (similar-word-noise.txt, secs. 3.2-3.4): a regulariser family.

Training loss (paper eq. 2 with the perturbation replaced by noise, ``alpha = lam``)::

    CE(f(E), y) + alpha * symKL(f(E), f(E_new)),   E_new = E + noise_size * (E_similar - E)

* ``E`` ``(B, T, E)`` is the *word* (token) embedding lookup of the clean pass
  (``ClassifierOutput.embeddings``): the noise enters before position/segment
  embeddings and LayerNorm (:class:`xaicore.models.TransformerClassifier`).
* ``E_similar`` is the current word-embedding row of a replacement token taken
  from a candidate table ``(V, K)``: the cosine neighbour table
  (:mod:`xaicore.neighbours`) or a WordNet synonym table
  (:mod:`xaicore.synonyms`, ``-1`` = no candidate).
* The noise is a constant (no backpropagation into the choice of ``E_similar``;
  the gradient reaches ``E`` as for an additive perturbation), computed as
  ``lerp(E, E_similar, w)`` so that ``noise_size = 1`` feeds *exactly*
  ``E_similar`` and ``0`` exactly ``E``.
* Special tokens and padding are never changed (``Batch.content_mask``).
* ``symKL(p, q) = KL(q.detach() || p) + KL(p.detach() || q)`` per example, the
  mt-dnn ``SymKlCriterion`` the paper's implementation (on MT-DNN) uses for its
  adversarial loss; gradients reach both the clean and the noisy pass.
* ``noise_size = 0`` is plain fine-tuning: the regulariser returns exactly 0
  without a second pass (otherwise the second pass would add a dropout-consistency
  term, which is not what the paper's ablation point means).
* Dropout: the noisy pass draws fresh dropout masks (as mt-dnn does).

Variants (:data:`NOISE_VARIANTS`):

==============  ====================================================================
``similar_1_1``  every content token -> its nearest cosine neighbour (1-1)
``similar_1_2``  every content token -> a random one of its top-``top_k`` (10) neighbours (1-2)
``similar_2_1``  ``fraction`` (15%) of the content tokens, chosen at random (2-1)
``similar_2_2``  ... the tokens of highest saliency (2-2)
``similar_2_3``  ... the tokens of lowest saliency (2-3)
``wordnet``      every content token with a WordNet synonym that is one vocabulary entry ->
                 a random such synonym; the others stay unchanged (WordNet_x)
==============  ====================================================================

Saliency (2-2/2-3, paper sec. 3.3, Simonyan et al.): ``sum_e |dCE/dE_{t,e}|`` of the
clean step-1 cross-entropy (gold labels), taken with :func:`torch.autograd.grad`.
Per example ``max(1, round(fraction * n))`` of its ``n`` content tokens are chosen.

Per-step statistics (``loss_with_stats``): ``noise_ratio`` = mean over examples of
``||noise||_2 / ||E||_2`` over the example's content tokens (paper: ~30% for 1-1 with
noise_size 0.5, ~70% for WordNet_0.5) and ``frac_changed`` = changed / content tokens.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaicore.perturbation import kl_from_logits
from xaicore.types import Batch, ClassifierOutput

NOISE_VARIANTS = ("similar_1_1", "similar_1_2", "similar_2_1", "similar_2_2", "similar_2_3", "wordnet")
SELECTIONS = ("all", "random", "saliency_high", "saliency_low")
_VARIANT_SETTINGS = {
    "similar_1_1": ("first", "all"),
    "similar_1_2": ("random", "all"),
    "similar_2_1": ("first", "random"),
    "similar_2_2": ("first", "saliency_high"),
    "similar_2_3": ("first", "saliency_low"),
    "wordnet": ("random", "all"),
}


def symmetric_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Per-example ``KL(p_b.detach() || p_a) + KL(p_a.detach() || p_b)`` ``(B,)`` (mt-dnn ``SymKlCriterion``)."""
    return kl_from_logits(logits_b, logits_a) + kl_from_logits(logits_a, logits_b)


def _forward(model: nn.Module, batch: Batch, **kwargs) -> ClassifierOutput:
    if batch.token_type_ids is not None:
        kwargs["token_type_ids"] = batch.token_type_ids
    return model(batch.input_ids, batch.attention_mask, **kwargs)


def select_tokens(scores: Tensor, mask: Tensor, fraction: float) -> Tensor:
    """Per example, the ``max(1, round(fraction * n))`` masked positions of highest score.

    Args:
        scores: ``(B, T)`` float.
        mask: ``(B, T)`` bool, candidate positions (``n`` per example).
        fraction: in ``(0, 1]``.

    Returns:
        ``(B, T)`` bool, a subset of ``mask`` (empty for an example without candidates).
    """
    n = mask.sum(dim=1)  # (B,)
    k = torch.clamp(torch.round(fraction * n.to(torch.float64)).long(), min=1)
    k = torch.minimum(k, n)
    masked = scores.masked_fill(~mask, float("-inf"))
    order = masked.argsort(dim=1, descending=True, stable=True)  # (B, T)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return (rank < k[:, None]) & mask


@dataclass(frozen=True, eq=False)
class SimilarWordNoise:
    """One member of the similar-word noise family (see module docstring).

    Attributes:
        name: variant, one of :data:`NOISE_VARIANTS`.
        candidates: ``(V, K)`` long replacement candidates per vocabulary id, most
            similar first; ``-1`` pads rows with fewer candidates.
        noise_size: interpolation weight in ``[0, 1]`` (paper: 0.5; 1.0 = replace).
        top_k: for ``pick="random"`` with a neighbour table, draw among the first
            ``top_k`` columns (paper 1-2: 10).
        fraction: share of content tokens changed by the partial variants (paper: 0.15).
        pick: ``"first"`` (nearest) or ``"random"`` (uniform among valid candidates).
        selection: which tokens get noise, one of :data:`SELECTIONS`.
    """

    name: str
    candidates: Tensor = field(repr=False)
    noise_size: float = 0.5
    top_k: int = 10
    fraction: float = 0.15
    pick: str = "first"
    selection: str = "all"
    uses_unlabeled: bool = False

    def __post_init__(self) -> None:
        if self.name not in NOISE_VARIANTS:
            raise ValueError(f"unknown noise variant {self.name!r}; choose one of {', '.join(NOISE_VARIANTS)}")
        if not 0.0 <= self.noise_size <= 1.0:
            raise ValueError(f"noise_size must be in [0, 1], got {self.noise_size}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.pick not in ("first", "random"):
            raise ValueError(f"pick must be 'first' or 'random', got {self.pick!r}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.candidates.dim() != 2 or self.candidates.dtype != torch.long:
            raise ValueError("candidates must be a (V, K) long tensor")

    # ------------------------------------------------------------ pieces
    def replacements(self, input_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Replacement id per position and whether one exists: ``(B, T)`` long, ``(B, T)`` bool."""
        cand = self.candidates.to(input_ids.device)[input_ids]  # (B, T, K)
        valid = cand >= 0
        if self.pick == "first":
            choice = torch.zeros_like(input_ids)
        else:
            count = valid.sum(-1) if self.name == "wordnet" else valid[..., : self.top_k].sum(-1)  # (B, T)
            u = torch.rand(input_ids.shape, device=input_ids.device)
            choice = torch.clamp((u * count).long(), max=cand.shape[-1] - 1)
        # valid candidates are left-aligned (padding -1 at the end), so the i-th valid one is column i
        rep = cand.gather(-1, choice.unsqueeze(-1)).squeeze(-1)  # (B, T)
        has = rep >= 0
        return torch.where(has, rep, input_ids), has & (rep != input_ids)

    def chosen_positions(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor]
    ) -> Tensor:
        """``(B, T)`` bool: the content positions this variant puts noise on."""
        mask = batch.content_mask
        if self.selection == "all":
            return mask
        if self.selection == "random":
            scores = torch.rand(mask.shape, device=mask.device)
        else:
            if labels is None:
                raise ValueError(f"{self.name}: saliency selection needs labels (the clean step-1 loss)")
            ce = F.cross_entropy(clean.logits, labels, reduction="sum")
            (grad,) = torch.autograd.grad(ce, clean.embeddings, retain_graph=True)
            scores = grad.abs().sum(-1)  # (B, T) saliency
            if self.selection == "saliency_low":
                scores = -scores
        return select_tokens(scores, mask, self.fraction)

    def noised(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """The noisy word embeddings ``(B, T, E)`` (graph to ``E`` kept) and the changed mask ``(B, T)``."""
        if clean.embeddings is None or not hasattr(model, "embed"):
            raise ValueError(f"{self.name} needs a model with an `embed` lookup that returns its word embeddings")
        emb = clean.embeddings  # (B, T, E)
        rep, has = self.replacements(batch.input_ids)
        changed = has & self.chosen_positions(model, batch, clean, labels)
        with torch.no_grad():
            target = model.embed(rep)  # (B, T, E) current rows of the replacements
        w = (self.noise_size * changed.to(emb.dtype)).unsqueeze(-1)  # (B, T, 1)
        new = torch.lerp(emb.detach(), target, w) + (emb - emb.detach())  # value exact, gradient to E
        return new, changed

    def perturbation(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor:
        """The additive noise ``E_new - E`` ``(B, T, E)``, detached (0 on special tokens and padding)."""
        new, _ = self.noised(model, batch, clean, labels)
        return (new - clean.embeddings).detach()

    # ------------------------------------------------------------- loss
    def loss_with_stats(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Per-example ``symKL`` ``(B,)`` and ``{"noise_ratio", "frac_changed"}``."""
        if self.noise_size == 0:
            zero = clean.logits.new_zeros(clean.logits.shape[0])
            return zero, {"noise_ratio": 0.0, "frac_changed": 0.0}
        new, changed = self.noised(model, batch, clean, labels)
        noisy = _forward(model, batch, inputs_embeds=new)
        with torch.no_grad():
            content = batch.content_mask
            emb = clean.embeddings * content.unsqueeze(-1)
            noise = (new - clean.embeddings) * content.unsqueeze(-1)
            ratio = noise.flatten(1).norm(dim=1) / emb.flatten(1).norm(dim=1).clamp_min(1e-12)
            stats = {
                "noise_ratio": float(ratio.mean()),
                "frac_changed": float(changed.sum()) / max(1, int(content.sum())),
            }
        return symmetric_kl(clean.logits, noisy.logits), stats

    def __call__(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor:
        return self.loss_with_stats(model, batch, clean, labels)[0]


def make_noise_regularizer(
    variant: str,
    candidates: Tensor,
    *,
    noise_size: float = 0.5,
    fraction: float = 0.15,
    top_k: int = 10,
    selection: Optional[str] = None,
    pick: Optional[str] = None,
) -> SimilarWordNoise:
    """Build a variant by name; ``selection`` / ``pick`` override the variant's defaults (config keys)."""
    if variant not in _VARIANT_SETTINGS:
        raise ValueError(f"unknown noise variant {variant!r}; choose one of {', '.join(NOISE_VARIANTS)}")
    default_pick, default_selection = _VARIANT_SETTINGS[variant]
    return SimilarWordNoise(
        name=variant, candidates=candidates, noise_size=float(noise_size), top_k=int(top_k),
        fraction=float(fraction), pick=pick or default_pick, selection=selection or default_selection,
    )
