"""Adversarial regularisers of the AT / VAT family, plugged into :func:`xaicore.training.fit`.

Each regulariser is a frozen dataclass with two methods:

* ``perturbation(model, batch, clean, labels)`` -> the adversarial
  perturbation ``r`` (``(B, T, E)`` for word targets, ``(B, T)`` for attention
  targets), per-example L2 norm ``eps`` over real, non-special tokens, exactly
  zero elsewhere (:func:`xaicore.perturbation.normalize_per_example`).
* ``__call__(model, batch, clean, labels)`` -> the per-example regularisation
  loss ``(B,)``; the training loop averages it and adds ``lambda *`` it to the
  cross-entropy (attention-vat.txt, eq. 10).

Methods (``name``):

* ``word_at`` - Goodfellow et al. (2015) / Miyato et al. (2017) adversarial
  training on word embeddings: ``r = eps * g / ||g||``, ``g = dCE/de``; loss
  ``CE(y, p(.|e + r))``. Labeled data only.
* ``word_iat`` / ``word_ivat`` - Sato et al. (2018) interpretable AT / VAT on word
  embeddings: ``r_t`` is a combination of the unit directions from token ``t``'s
  embedding to its ``K`` nearest vocabulary words (cosine,
  :func:`xaicore.neighbours.nearest_neighbours`, refreshed during training), so
  each token moves towards other words (``K << E``: a token-specific subspace).
* ``word_vat`` - Miyato et al. (2017) virtual adversarial training on word
  embeddings, one power iteration with finite-difference step ``xi``; loss
  ``KL(p(.|e) || p(.|e + r))`` with the clean distribution detached; uses
  labeled and unlabeled data.
* ``attention_at`` / ``attention_iat`` - Kitada & Iyatomi (2021a) adversarial
  training on the pre-softmax attention scores ``a~``.
* ``attention_vat`` / ``attention_ivat`` - Kitada & Iyatomi (2021b,
  attention-vat.txt eqs. 1-9): virtual adversarial perturbation of ``a~``.

Interpretable (``i``) variants (attention-vat.txt eqs. 5-9; Sato et al. 2018):
the perturbation is a combination ``r(alpha) = sum_{t,k} alpha_tk u_tk`` of
*attention-exchange directions* ``u_tk = +-(e_t - e_j)/sqrt(2)``, ``j`` one of
the ``K`` (``neighbours``, default 3) tokens whose scores are nearest to token
``t``'s (:func:`xaicore.perturbation.exchange_graph`): moving along ``u_tk``
moves ``a~`` towards the scores in which ``t`` and ``j`` trade attention, as
Sato et al.'s directions move a word towards a neighbouring word. iAT takes the
gradient w.r.t. ``alpha`` at 0 (``U^T g``) and maps it back (``r = U U^T g =
L_G g / 2``, a neighbour-smoothed gradient); iVAT runs VAT's power iteration
in ``alpha``-space from a random ``alpha`` (``r = U U^T H U alpha0``). Both are
rescaled to norm ``eps`` (the paper bounds ``||r|| <= eps``; we take the
boundary, like every other method here).

Why not the literal equations: each token's score is a scalar, so a per-token
``r_t = alpha_t . d^_t`` under one norm bound is ``eps g / ||g||`` (AT/VAT
exactly), and the earlier reading ``r = sum_t alpha_t d^_t`` with rows ``d_t =
a~_t 1 - a~`` always lies in ``span{1, a~}``: only a sharpening or flattening
of the attention (a temperature change), with part of ``eps`` spent on the
all-ones direction that softmax ignores. The public reference code's Attention
iAT (shunk031/attention-meets-perturbation) is Attention AT with its sign
flipped. The exchange directions of a sparse graph are neither: ``r`` sums to
0, its rank across gradients is ``T - #components`` and it equals AT only when
the graph is complete (``K >= T - 1``, e.g. sentences of up to 4 tokens at K=3).

Dropout: a perturbed pass replays the clean pass's dropout masks
(``ClassifierOutput.dropout_masks``), so in training mode the perturbed and
clean outputs differ by the perturbation alone. (Miyato et al.'s text code runs
the perturbed pass with fresh masks; then the KL is not 0 at ``r = 0`` and the
one-step power iteration follows the dropout noise instead of the Hessian.)
Models that do not expose their masks (the HF transformer wrapper) draw fresh ones.

Attention perturbations reuse the clean pass's encoder states
(``ClassifierOutput.hidden``): only the attention and decoder are re-run, so no
second LSTM pass is made. Gradients are taken with :func:`torch.autograd.grad`
(never ``.backward()``) and nothing is stored on the model between calls.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaicore.neighbours import NeighbourTable, nearest_neighbours
from xaicore.perturbation import ExchangeGraph, exchange_graph, kl_from_logits, normalize_per_example
from xaicore.noise import NOISE_VARIANTS
from xaicore.types import Batch, ClassifierOutput

REGULARIZERS = (
    "none",
    "word_at",
    "word_iat",
    "word_vat",
    "word_ivat",
    "attention_at",
    "attention_iat",
    "attention_vat",
    "attention_ivat",
)

#: regularisers of the transformer family: SMART (xaicore.smart) and the similar-word noise
#: variants (xaicore.noise). They need model-specific tables (neighbours, synonyms), so the
#: finetune trainable builds them; make_regularizer does not.
TRANSFORMER_REGULARIZERS = ("none", "smart") + NOISE_VARIANTS


class Regularizer(Protocol):
    name: str
    uses_unlabeled: bool

    def perturbation(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor: ...

    def __call__(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor: ...


def forward_batch(model: nn.Module, batch: Batch, **kwargs) -> ClassifierOutput:
    """Run ``model`` on ``batch`` (ids, mask, token types) with extra keyword args."""
    if batch.token_type_ids is not None:
        kwargs["token_type_ids"] = batch.token_type_ids
    return model(batch.input_ids, batch.attention_mask, **kwargs)


@dataclass(frozen=True)
class AdversarialRegularizer:
    """One member of the AT/VAT family (see module docstring).

    Attributes:
        name: one of :data:`REGULARIZERS` except ``"none"``.
        eps: per-example L2 norm of the perturbation (``>= 0``).
        xi: finite-difference step of the VAT power iteration (``> 0``);
            Miyato et al.'s text default 0.1.
        neighbours: ``K`` of the interpretable variants: exchange partners per token
            (attention, :func:`xaicore.perturbation.exchange_graph`).
        word_neighbours: ``K`` of Word iAT/iVAT: nearest vocabulary words per token
            (Sato et al. 2018 use 10).
        refresh_every: Word iAT/iVAT recompute the neighbour table of the (trained)
            embedding matrix every this many perturbations (Sato et al. refresh it every
            epoch; 217 = one SST epoch at batch 32); it is cached between calls.
    """

    name: str
    eps: float
    xi: float = 0.1
    neighbours: int = 3
    word_neighbours: int = 10
    refresh_every: int = 217
    _cache: dict = field(default_factory=dict, init=False, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        if self.name not in REGULARIZERS or self.name == "none":
            raise ValueError(f"unknown regularizer {self.name!r}; choose one of {', '.join(REGULARIZERS)}")
        if not self.eps >= 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")
        if not self.xi > 0:
            raise ValueError(f"xi must be > 0, got {self.xi}")
        if self.neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")
        if self.word_neighbours < 1 or self.refresh_every < 1:
            raise ValueError(f"word_neighbours and refresh_every must be >= 1, got "
                             f"{self.word_neighbours}, {self.refresh_every}")

    @property
    def target(self) -> str:
        return self.name.split("_")[0]

    @property
    def virtual(self) -> bool:
        return self.name.endswith("vat")

    @property
    def interpretable(self) -> bool:
        return self.name.split("_")[1].startswith("i")

    @property
    def uses_unlabeled(self) -> bool:
        return self.virtual

    # ------------------------------------------------------------- internals
    def _check(self, model: nn.Module, clean: ClassifierOutput) -> None:
        if self.target == "attention" and (clean.hidden is None or not hasattr(model, "attend")):
            raise ValueError(f"{self.name} needs a model with additive attention (AttentionLSTMClassifier)")
        if self.target == "word" and clean.embeddings is None:
            raise ValueError(f"{self.name} needs the model to return its word embeddings")
        if self.target == "word" and self.interpretable and not isinstance(getattr(model, "embedding", None), nn.Embedding):
            raise ValueError(f"{self.name} needs a word-embedding table (model.embedding) for its neighbour directions")

    def _perturbed_logits(self, model: nn.Module, batch: Batch, clean: ClassifierOutput, r: Tensor) -> Tensor:
        # the clean pass's dropout masks are replayed (when the model exposes them): the
        # perturbed pass then differs by r only, and KL(clean || perturbed) is 0 at r = 0, which
        # VAT's power iteration assumes (fresh masks would make its gradient a dropout artefact)
        replay = {} if clean.dropout_masks is None else {"dropout_masks": clean.dropout_masks}
        if self.target == "attention":
            mask = batch.attention_mask.bool()
            return model.attend(clean.hidden, mask, scores=clean.scores, score_perturb=r, **replay).logits
        return forward_batch(model, batch, emb_perturb=r, **replay).logits

    def _direction_space(self, batch: Batch, clean: ClassifierOutput) -> tuple[Tensor, Optional[ExchangeGraph]]:
        """The perturbable-token mask ``(B, T)`` and, for interpretable variants, the exchange graph."""
        mask = batch.content_mask
        graph = (exchange_graph(clean.scores, mask, self.neighbours)
                 if self.interpretable and self.target == "attention" else None)
        return mask, graph

    # ------------------------------------------------- Word iAT / iVAT (Sato et al. 2018)
    def neighbour_table(self, model: nn.Module) -> NeighbourTable:
        """The ``word_neighbours`` nearest vocabulary words (cosine, padding excluded) of every
        word, from :func:`xaicore.neighbours.nearest_neighbours` on the current embedding
        matrix; cached and recomputed every ``refresh_every`` calls."""
        weight = model.embedding.weight.detach()
        calls = self._cache.get("calls", 0)
        table = self._cache.get("table")
        if table is None or calls % self.refresh_every == 0 or table.vocab_size != weight.shape[0]:
            exclude = torch.zeros(weight.shape[0], dtype=torch.bool, device=weight.device)
            pad = getattr(getattr(model, "config", None), "pad_id", None)
            if pad is not None:
                exclude[pad] = True
            table = nearest_neighbours(weight, self.word_neighbours, exclude=exclude)
            self._cache["table"] = table
        self._cache["calls"] = calls + 1
        return table

    def word_directions(self, model: nn.Module, batch: Batch, clean: ClassifierOutput) -> Tensor:
        """Unit directions ``d_tk = (w_k - w_t) / ||w_k - w_t||`` ``(B, T, K, E)`` from each token's
        embedding to its ``K`` nearest vocabulary words (Sato et al. 2018, eq. 4), detached;
        0 where the two coincide or the norm underflows."""
        table = self.neighbour_table(model)
        nb = table.ids.to(batch.input_ids.device)[batch.input_ids]  # (B, T, K)
        w = model.embedding.weight.detach()
        diff = w[nb] - clean.embeddings.detach().unsqueeze(2)  # (B, T, K, E)
        norm = diff.norm(dim=-1, keepdim=True)
        tiny = torch.finfo(diff.dtype).tiny
        unit = diff / norm.clamp_min(tiny)
        return torch.where(norm > tiny ** 0.5, unit, torch.zeros_like(unit))

    def _word_interpretable(self, model, batch, clean, labels, mask) -> Tensor:
        """Word iAT / iVAT: ``r_t = sum_k alpha_tk d_tk`` with ``alpha_t`` the gradient w.r.t.
        ``alpha`` normalised per token over ``K`` (Sato et al.'s code), then ``r`` normalised per
        example to ``eps``. iAT: gradient of the CE at ``alpha = 0``; iVAT: one power-iteration
        step of the KL in ``alpha``-space from a random ``alpha`` (scale detached, as for VAT)."""
        dirs = self.word_directions(model, batch, clean)  # (B, T, K, E)
        if not self.virtual:
            if labels is None:
                raise ValueError(f"{self.name} is supervised: labels are required")
            ce = F.cross_entropy(clean.logits, labels, reduction="sum")
            (g,) = torch.autograd.grad(ce, clean.embeddings, retain_graph=True)
            g_alpha = torch.einsum("btke,bte->btk", dirs, g.detach())
        else:
            var = torch.randn(dirs.shape[:3], dtype=dirs.dtype, device=dirs.device)
            var = normalize_per_example(var, mask, 1.0).requires_grad_(True)
            d = normalize_per_example(torch.einsum("btk,btke->bte", var, dirs), mask, self.xi, detach_scale=True)
            kl = kl_from_logits(clean.logits, self._perturbed_logits(model, batch, clean, d)).sum()
            (g_alpha,) = torch.autograd.grad(kl, var, retain_graph=True)
        B, T, K = g_alpha.shape
        per_token = torch.ones(B * T, 1, dtype=torch.bool, device=g_alpha.device)
        alpha = normalize_per_example(g_alpha.detach().reshape(B * T, 1, K), per_token, 1.0).reshape(B, T, K)
        return normalize_per_example(torch.einsum("btk,btke->bte", alpha, dirs), mask, self.eps)

    # -------------------------------------------------------------- public
    def perturbation(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor:
        """The adversarial perturbation ``r`` for ``batch`` given its clean pass.

        Args:
            model: the classifier that produced ``clean``.
            batch: the inputs.
            clean: the clean forward output (its graph must still be alive).
            labels: ``(B,)`` gold labels; required for (non-virtual) AT.

        Returns:
            ``(B, T, E)`` (word) or ``(B, T)`` (attention) tensor, detached,
            per-example norm ``eps`` on real non-special tokens, 0 elsewhere.
        """
        self._check(model, clean)
        mask, graph = self._direction_space(batch, clean)
        if self.interpretable and self.target == "word":
            return self._word_interpretable(model, batch, clean, labels, mask)
        point = clean.embeddings if self.target == "word" else clean.scores

        if not self.virtual:
            if labels is None:
                raise ValueError(f"{self.name} is supervised: labels are required")
            ce = F.cross_entropy(clean.logits, labels, reduction="sum")
            (grad,) = torch.autograd.grad(ce, point, retain_graph=True)
            if graph is not None:  # gradient w.r.t. alpha at alpha = 0 (U^T g), mapped back to r
                grad = graph.combine(graph.project(grad))
            return normalize_per_example(grad.detach(), mask, self.eps)

        # VAT: one power iteration from a random direction (Miyato et al. 2017, eqs. 9-10):
        # g = grad_d KL(p || p(x + d)) at d = xi * d0 is xi * H d0 + O(xi^2), H the KL Hessian.
        # The search variable is r itself, or alpha (B, T, K) for interpretable variants (then
        # g_alpha = U^T H U alpha0). The scaling to xi is a constant for autograd: differentiating
        # it would project out g's component along d0 (tests: one power-iteration step).
        if graph is None:
            var = torch.randn_like(point)
        else:
            var = torch.randn_like(graph.weight) * (graph.weight != 0).to(graph.weight.dtype)
        var = normalize_per_example(var, mask, 1.0).requires_grad_(True)
        direction = var if graph is None else graph.combine(var)
        d = normalize_per_example(direction, mask, self.xi, detach_scale=True)
        kl = kl_from_logits(clean.logits, self._perturbed_logits(model, batch, clean, d)).sum()
        (grad,) = torch.autograd.grad(kl, var, retain_graph=True)
        if graph is not None:
            grad = graph.combine(grad)
        return normalize_per_example(grad.detach(), mask, self.eps)

    def __call__(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor:
        """Per-example regularisation loss ``(B,)`` (CE for AT, KL for VAT)."""
        r = self.perturbation(model, batch, clean, labels)
        logits = self._perturbed_logits(model, batch, clean, r)
        if self.virtual:
            return kl_from_logits(clean.logits, logits)
        return F.cross_entropy(logits, labels, reduction="none")


def make_regularizer(
    name: str, *, eps: float = 1.0, xi: float = 0.1, neighbours: int = 3, word_neighbours: int = 10,
    refresh_every: int = 217,
) -> Optional[AdversarialRegularizer]:
    """Build a regulariser by name; ``"none"`` gives ``None`` (vanilla training).

    Raises:
        ValueError: unknown name, ``eps < 0``, ``xi <= 0`` or ``neighbours < 1``.
    """
    if name == "none":
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        return None
    return AdversarialRegularizer(name=name, eps=float(eps), xi=float(xi), neighbours=int(neighbours),
                                  word_neighbours=int(word_neighbours), refresh_every=int(refresh_every))
