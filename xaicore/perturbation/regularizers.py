"""Adversarial regularisers of the AT / VAT family, plugged into :func:`xaicore.training.fit`.

Each regulariser is a frozen dataclass with two methods:

* ``perturbation(model, batch, clean, labels)`` -> the adversarial
  perturbation ``r`` (``(B, T, E)`` for word targets, ``(B, T)`` for attention
  targets), per-example L2 norm ``eps`` over real, non-special tokens, exactly
  zero elsewhere (:func:`xaicore.perturbation.norms.normalize_per_example`).
* ``__call__(model, batch, clean, labels)`` -> the per-example regularisation
  loss ``(B,)``; the training loop averages it and adds ``lambda *`` it to the
  cross-entropy (attention-vat.txt, eq. 10).

Methods (``name``, :data:`REGULARIZER_KINDS`): each is a :class:`RegularizerKind`, the composition
of two declared axes and a flag, never parsed from its name:

* *where* the perturbation applies (:class:`PerturbationSite`): :data:`WORD_EMBEDDINGS` (the
  word vectors ``e``) or :data:`ATTENTION_SCORES` (the pre-softmax scores ``a~``);
* *how* its direction is found (:class:`DirectionSearch`): :data:`ADVERSARIAL_GRADIENT` (AT,
  supervised, loss CE) or :data:`VIRTUAL_ADVERSARIAL` (VAT, one power iteration, loss KL, uses
  unlabeled data);
* ``interpretable``: the direction is a combination of neighbour directions (the site's
  :meth:`PerturbationSite.basis`) instead of a free vector.

:func:`register_regularizer` adds a kind (docs/extending.md has a worked example).

* ``word_at`` - Goodfellow et al. (2015) / Miyato et al. (2017) adversarial
  training on word embeddings: ``r = eps * g / ||g||``, ``g = dCE/de``; loss
  ``CE(y, p(.|e + r))``. Labeled data only.
* ``word_iat`` / ``word_ivat`` - Sato et al. (2018) interpretable AT / VAT on word
  embeddings: ``r_t`` is a combination of the unit directions from token ``t``'s
  embedding to its ``K`` nearest vocabulary words (cosine,
  :func:`xaicore.perturbation.neighbours.nearest_neighbours`, refreshed during training), so
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
``t``'s (:func:`xaicore.perturbation.norms.exchange_graph`): moving along ``u_tk``
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

from xaicore.models.protocol import capability, forward_batch
from xaicore.perturbation.neighbours import NeighbourTable, nearest_neighbours
from xaicore.perturbation.norms import ExchangeGraph, exchange_graph, kl_from_logits, normalize_per_example
from xaicore.perturbation.noise import NOISE_VARIANTS
from xaicore.precision import autocast_active, exact, to_exact
from xaicore.types import Batch, ClassifierOutput

__all__ = [
    "ATTENTION_SCORES", "ADVERSARIAL_GRADIENT", "REGULARIZERS", "REGULARIZER_KINDS", "TRANSFORMER_REGULARIZERS",
    "VIRTUAL_ADVERSARIAL", "WORD_EMBEDDINGS", "AdversarialRegularizer", "Basis", "DirectionSearch",
    "PerturbationSite", "Regularizer", "RegularizerKind", "forward_batch", "make_regularizer",
    "register_regularizer", "regularizer_names",
]


class Regularizer(Protocol):
    name: str
    uses_unlabeled: bool

    def perturbation(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor: ...

    def __call__(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor: ...


# ------------------------------------------------------------------ direction bases
class Basis:
    """The space a direction is searched in: ``r = combine(finish(alpha))`` for a search variable ``alpha``.

    This one is the identity (``alpha`` is ``r`` itself); interpretable variants use a basis of
    neighbour directions (:class:`ExchangeBasis`, :class:`NeighbourBasis`).
    """

    def random(self, point: Tensor) -> Tensor:
        """A random search variable (VAT's starting direction)."""
        return torch.randn_like(point)

    def project(self, g: Tensor) -> Tensor:
        """A gradient w.r.t. the perturbed point, as the gradient w.r.t. ``alpha`` at 0."""
        return g

    def combine(self, alpha: Tensor) -> Tensor:
        """``alpha`` -> a perturbation of the point."""
        return alpha

    def finish(self, alpha: Tensor) -> Tensor:
        """Post-processing of the found ``alpha`` before :meth:`combine`."""
        return alpha


IDENTITY = Basis()


@dataclass(frozen=True, eq=False)
class ExchangeBasis(Basis):
    """Attention-exchange directions ``u_tk`` of :func:`xaicore.perturbation.norms.exchange_graph`."""

    graph: ExchangeGraph

    def random(self, point: Tensor) -> Tensor:
        w = self.graph.weight
        return torch.randn_like(w) * (w != 0).to(w.dtype)

    def project(self, g: Tensor) -> Tensor:
        return self.graph.project(g)

    def combine(self, alpha: Tensor) -> Tensor:
        return self.graph.combine(alpha)


@dataclass(frozen=True, eq=False)
class NeighbourBasis(Basis):
    """Sato et al.'s unit directions ``(B, T, K, E)`` to each token's nearest vocabulary words;
    the found ``alpha`` is normalised per token over ``K`` (their code)."""

    dirs: Tensor

    def random(self, point: Tensor) -> Tensor:
        return torch.randn(self.dirs.shape[:3], dtype=self.dirs.dtype, device=self.dirs.device)

    def project(self, g: Tensor) -> Tensor:
        return torch.einsum("btke,bte->btk", self.dirs, g)

    def combine(self, alpha: Tensor) -> Tensor:
        return torch.einsum("btk,btke->bte", alpha, self.dirs)

    def finish(self, alpha: Tensor) -> Tensor:
        B, T, K = alpha.shape
        per_token = torch.ones(B * T, 1, dtype=torch.bool, device=alpha.device)
        return normalize_per_example(alpha.detach().reshape(B * T, 1, K), per_token, 1.0).reshape(B, T, K)


# ------------------------------------------------------------------ axis 1: where
class PerturbationSite(Protocol):
    """Where a perturbation applies: what it perturbs, how the perturbed pass runs, its neighbour basis."""

    name: str

    def check(self, reg: "AdversarialRegularizer", model: nn.Module, clean: ClassifierOutput) -> None: ...

    def point(self, clean: ClassifierOutput) -> Tensor: ...

    def perturbed_logits(self, model: nn.Module, batch: Batch, clean: ClassifierOutput, r: Tensor,
                         replay: dict) -> Tensor: ...

    def basis(self, reg: "AdversarialRegularizer", model: nn.Module, batch: Batch, clean: ClassifierOutput,
              mask: Tensor) -> Basis: ...


@dataclass(frozen=True)
class WordEmbeddingSite:
    """The word embeddings ``e`` ``(B, T, E)``; neighbour basis: nearest vocabulary words (Sato et al. 2018)."""

    name: str = "word"

    def check(self, reg, model, clean) -> None:
        if clean.embeddings is None:
            raise ValueError(f"{reg.name} needs the model to return its word embeddings")
        if reg.interpretable and not capability(model, "has_embedding_table"):
            raise ValueError(f"{reg.name} needs a word-embedding table (model.embedding) for its neighbour directions")

    def point(self, clean):
        return clean.embeddings

    def perturbed_logits(self, model, batch, clean, r, replay):
        return forward_batch(model, batch, emb_perturb=r, **replay).logits

    def basis(self, reg, model, batch, clean, mask):
        return NeighbourBasis(reg.word_directions(model, batch, clean))


@dataclass(frozen=True)
class AttentionScoreSite:
    """The pre-softmax attention scores ``a~`` ``(B, T)``, re-run from the clean pass's encoder states;
    neighbour basis: attention-exchange directions (attention-vat.txt eqs. 5-9)."""

    name: str = "attention"

    def check(self, reg, model, clean) -> None:
        if clean.hidden is None or not capability(model, "has_attention"):
            raise ValueError(f"{reg.name} needs a model with additive attention (AttentionLSTMClassifier)")

    def point(self, clean):
        return clean.scores

    def perturbed_logits(self, model, batch, clean, r, replay):
        mask = batch.attention_mask.bool()
        return model.attend(clean.hidden, mask, scores=clean.scores, score_perturb=r, **replay).logits

    def basis(self, reg, model, batch, clean, mask):
        return ExchangeBasis(exchange_graph(clean.scores, mask, reg.neighbours))


WORD_EMBEDDINGS = WordEmbeddingSite()
ATTENTION_SCORES = AttentionScoreSite()


# ------------------------------------------------------------------ axis 2: how
class DirectionSearch(Protocol):
    """How the direction is found (in ``basis`` coordinates) and which loss the perturbed pass gets."""

    name: str
    uses_unlabeled: bool

    def search(self, reg: "AdversarialRegularizer", model: nn.Module, batch: Batch, clean: ClassifierOutput,
               labels: Optional[Tensor], point: Tensor, basis: Basis, mask: Tensor) -> Tensor: ...

    def loss(self, clean: ClassifierOutput, logits: Tensor, labels: Optional[Tensor]) -> Tensor: ...


@dataclass(frozen=True)
class AdversarialGradient:
    """AT (Goodfellow et al. 2015): the gradient of the clean cross-entropy; loss CE on the perturbed pass."""

    name: str = "at"
    uses_unlabeled: bool = False

    def search(self, reg, model, batch, clean, labels, point, basis, mask):
        if labels is None:
            raise ValueError(f"{reg.name} is supervised: labels are required")
        ce = F.cross_entropy(clean.logits, labels, reduction="sum")
        (grad,) = torch.autograd.grad(ce, point, retain_graph=True)
        with exact(grad):
            return basis.project(to_exact(grad.detach()))  # gradient w.r.t. alpha at alpha = 0 (U^T g)

    def loss(self, clean, logits, labels):
        return F.cross_entropy(logits, labels, reduction="none")


@dataclass(frozen=True)
class VirtualAdversarial:
    """VAT (Miyato et al. 2017): one power iteration of ``KL(p || p(x + d))``; loss KL (no labels needed)."""

    name: str = "vat"
    uses_unlabeled: bool = True

    def search(self, reg, model, batch, clean, labels, point, basis, mask):
        # g = grad_d KL(p || p(x + d)) at d = xi * d0 is xi * H d0 + O(xi^2), H the KL Hessian; the
        # search variable is r itself or alpha (then g_alpha = U^T H U alpha0). The scaling to xi is
        # a constant for autograd: differentiating it would project out g's component along d0.
        # The xi probe is exact: built and run in fp32 (autocast off). Under autocast, the probe's
        # finite difference (entries of order xi / sqrt(T E)) is a few bf16 ulps of the embeddings, and
        # the bf16 clean logits differ from an fp32 pass by rounding: the KL's first-order term would
        # swamp ``xi H d0`` (sign flips seen on a tiny BERT). So there the reference is an fp32 pass at
        # d = 0 (one extra forward without graph); in fp32 nothing changes (the clean logits).
        under_autocast = autocast_active(point)
        with exact(point):
            var = normalize_per_example(to_exact(basis.random(point)), mask, 1.0).requires_grad_(True)
            d = normalize_per_example(basis.combine(var), mask, reg.xi, detach_scale=True)
            target = clean.logits
            if under_autocast:
                with torch.no_grad():
                    target = reg._perturbed_logits(model, batch, clean, torch.zeros_like(d))
            kl = kl_from_logits(target, reg._perturbed_logits(model, batch, clean, d)).sum()
        (grad,) = torch.autograd.grad(kl, var, retain_graph=True)
        return to_exact(grad)

    def loss(self, clean, logits, labels):
        return kl_from_logits(clean.logits, logits)


ADVERSARIAL_GRADIENT = AdversarialGradient()
VIRTUAL_ADVERSARIAL = VirtualAdversarial()


# ------------------------------------------------------------------ registry
@dataclass(frozen=True)
class RegularizerKind:
    """A registered member of the family: ``name`` (the config value) = ``site`` x ``direction`` x ``interpretable``."""

    name: str
    site: PerturbationSite
    direction: DirectionSearch
    interpretable: bool = False

    @property
    def uses_unlabeled(self) -> bool:
        return self.direction.uses_unlabeled


#: every registered regulariser kind by name (:func:`register_regularizer`)
REGULARIZER_KINDS: dict[str, RegularizerKind] = {}


def register_regularizer(kind: RegularizerKind) -> RegularizerKind:
    """Add ``kind`` to :data:`REGULARIZER_KINDS` (then ``make_regularizer(kind.name)`` and the
    classifier trainable's ``regularizer:`` accept it); a name may be registered once."""
    if kind.name == "none" or kind.name in REGULARIZER_KINDS:
        raise ValueError(f"regularizer {kind.name!r} is already registered")
    REGULARIZER_KINDS[kind.name] = kind
    return kind


for _site in (WORD_EMBEDDINGS, ATTENTION_SCORES):
    for _direction in (ADVERSARIAL_GRADIENT, VIRTUAL_ADVERSARIAL):
        for _interpretable in (False, True):
            register_regularizer(RegularizerKind(f"{_site.name}_{'i' if _interpretable else ''}{_direction.name}",
                                                 _site, _direction, _interpretable))


def regularizer_names() -> tuple[str, ...]:
    """``"none"`` and every registered kind (including ones registered after import)."""
    return ("none",) + tuple(REGULARIZER_KINDS)


#: the built-in names (``"none"`` = vanilla training); :func:`regularizer_names` also lists later registrations
REGULARIZERS = regularizer_names()

#: regularisers of the transformer family: SMART (xaicore.perturbation.smart) and the similar-word noise
#: variants (xaicore.perturbation.noise). They need model-specific tables (neighbours, synonyms), so the
#: finetune trainable builds them; make_regularizer does not.
TRANSFORMER_REGULARIZERS = ("none", "smart") + NOISE_VARIANTS


@dataclass(frozen=True)
class AdversarialRegularizer:
    """One member of the AT/VAT family (see module docstring).

    Attributes:
        name: a :data:`REGULARIZER_KINDS` name (its :class:`RegularizerKind` gives the behaviour).
        eps: per-example L2 norm of the perturbation (``>= 0``).
        xi: finite-difference step of the VAT power iteration (``> 0``);
            Miyato et al.'s text default 0.1.
        neighbours: ``K`` of the interpretable variants: exchange partners per token
            (attention, :func:`xaicore.perturbation.norms.exchange_graph`).
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
        if self.name not in REGULARIZER_KINDS:
            raise ValueError(f"unknown regularizer {self.name!r}; choose one of {', '.join(regularizer_names())}")
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
    def kind(self) -> RegularizerKind:
        return REGULARIZER_KINDS[self.name]

    @property
    def target(self) -> str:
        """The perturbation site's name (``"word"`` / ``"attention"``)."""
        return self.kind.site.name

    @property
    def virtual(self) -> bool:
        return self.kind.direction.uses_unlabeled

    @property
    def interpretable(self) -> bool:
        return self.kind.interpretable

    @property
    def uses_unlabeled(self) -> bool:
        return self.kind.uses_unlabeled

    # ------------------------------------------------------------- internals
    def _perturbed_logits(self, model: nn.Module, batch: Batch, clean: ClassifierOutput, r: Tensor) -> Tensor:
        # the clean pass's dropout masks are replayed (when the model exposes them): the
        # perturbed pass then differs by r only, and KL(clean || perturbed) is 0 at r = 0, which
        # VAT's power iteration assumes (fresh masks would make its gradient a dropout artefact)
        replay = {} if clean.dropout_masks is None else {"dropout_masks": clean.dropout_masks}
        return self.kind.site.perturbed_logits(model, batch, clean, r, replay)

    # ------------------------------------------------- Word iAT / iVAT (Sato et al. 2018)
    def neighbour_table(self, model: nn.Module) -> NeighbourTable:
        """The ``word_neighbours`` nearest vocabulary words (cosine, padding excluded) of every
        word, from :func:`xaicore.perturbation.neighbours.nearest_neighbours` on the current embedding
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
        w = to_exact(model.embedding.weight.detach())
        with exact(w):  # fp32 also under autocast
            diff = w[nb] - to_exact(clean.embeddings.detach()).unsqueeze(2)  # (B, T, K, E)
            norm = diff.norm(dim=-1, keepdim=True)
            tiny = torch.finfo(diff.dtype).tiny
            unit = diff / norm.clamp_min(tiny)
            return torch.where(norm > tiny ** 0.5, unit, torch.zeros_like(unit))

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
        kind = self.kind
        kind.site.check(self, model, clean)
        mask = batch.content_mask
        basis = kind.site.basis(self, model, batch, clean, mask) if kind.interpretable else IDENTITY
        alpha = kind.direction.search(self, model, batch, clean, labels, kind.site.point(clean), basis, mask)
        with exact(alpha):  # the eps-scaled direction in fp32 (xaicore.precision)
            return normalize_per_example(basis.combine(basis.finish(to_exact(alpha.detach()))).detach(), mask, self.eps)

    def __call__(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor:
        """Per-example regularisation loss ``(B,)`` (CE for AT, KL for VAT)."""
        r = self.perturbation(model, batch, clean, labels)
        return self.kind.direction.loss(clean, self._perturbed_logits(model, batch, clean, r), labels)


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
