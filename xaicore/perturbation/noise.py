"""Similar-word embedding noise (similar-word-noise.txt, secs. 3.2-3.4): a regulariser family.

Training loss (paper eq. 2 with the perturbation replaced by noise, ``alpha = lam``)::

    CE(f(E), y) + alpha * symKL(f(E), f(E_new)),   E_new = E + noise_size * (E_similar - E)

* ``E`` ``(B, T, E)`` is the *word* (token) embedding lookup of the clean pass
  (``ClassifierOutput.embeddings``): the noise enters before position/segment
  embeddings and LayerNorm (:class:`xaicore.models.TransformerClassifier`).
* ``E_similar`` is the current word-embedding row of a replacement token taken
  from a candidate table ``(V, K)``: the cosine neighbour table
  (:mod:`xaicore.perturbation.neighbours`) or a WordNet synonym table
  (:mod:`xaicore.perturbation.synonyms`, ``-1`` = no candidate).
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
* Cost: one extra forward over fine-tuning (the paper's point). In the training loop the clean and
  noisy rows run as one batched forward (:meth:`SimilarWordNoise.fused_loss`), except for the
  saliency variants, whose token choice needs the clean pass's gradient first.

Variants (:data:`NOISE_VARIANTS`) are named recipes (:data:`NOISE_RECIPES`, like TextAttack's attack
recipes) built from two components, each a registry of objects:

* a **candidate source** (:data:`CANDIDATE_SOURCES`): which candidate table it reads (``table``:
  ``"neighbours"`` = the cosine neighbour table, ``"synonyms"`` = the WordNet synonym table; the
  trainable builds the declared table) and how it picks one candidate per token:
  ``nearest`` (the first), ``random_top_k`` (uniform among the first ``top_k``), ``wordnet``
  (uniform among all valid synonyms);
* a **token selection** (:data:`TOKEN_SELECTIONS`): ``all``, ``random`` (``fraction`` of the
  content tokens), ``saliency_high`` / ``saliency_low`` (``needs_gradient``: the clean pass's
  gradient first).

:func:`register_candidate_source`, :func:`register_token_selection` and :func:`register_noise_recipe`
add one (docs/extending.md). The recipes:

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
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaicore.models.protocol import TextClassifier, forward_batch
from xaicore.perturbation.norms import kl_from_logits
from xaicore.precision import exact, to_exact, to_host
from xaicore.types import Batch, ClassifierOutput

def symmetric_kl(logits_a: Tensor, logits_b: Tensor) -> Tensor:
    """Per-example ``KL(p_b.detach() || p_a) + KL(p_a.detach() || p_b)`` ``(B,)`` (mt-dnn ``SymKlCriterion``)."""
    return kl_from_logits(logits_b, logits_a) + kl_from_logits(logits_a, logits_b)


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


# ------------------------------------------------------------------ candidate sources
class CandidateSource:
    """Where a token's replacement comes from: the candidate ``table`` it reads and :meth:`choose`."""

    name: str = ""
    #: the candidate table the trainable must build: "neighbours" or "synonyms"
    table: str = "neighbours"

    def choose(self, cand: Tensor, valid: Tensor, top_k: int) -> Tensor:
        """Column ``(B, T)`` long of the candidate picked per position (``cand``/``valid`` ``(B, T, K)``;
        valid candidates are left-aligned, so the i-th valid one is column i)."""
        raise NotImplementedError


class NearestNeighbour(CandidateSource):
    """The first (most similar) candidate of the cosine neighbour table (1-1, 2-x)."""

    name, table = "nearest", "neighbours"

    def choose(self, cand, valid, top_k):
        return torch.zeros(cand.shape[:2], dtype=cand.dtype, device=cand.device)


class RandomTopK(CandidateSource):
    """A uniformly random one of the first ``top_k`` cosine neighbours (1-2)."""

    name, table = "random_top_k", "neighbours"

    def choose(self, cand, valid, top_k):
        return _uniform_column(valid[..., :top_k].sum(-1), cand)


class WordNetSynonym(CandidateSource):
    """A uniformly random WordNet synonym that is one vocabulary entry (WordNet_x)."""

    name, table = "wordnet", "synonyms"

    def choose(self, cand, valid, top_k):
        return _uniform_column(valid.sum(-1), cand)


def _uniform_column(count: Tensor, cand: Tensor) -> Tensor:
    u = torch.rand(count.shape, device=cand.device)
    return torch.clamp((u * count).long(), max=cand.shape[-1] - 1)


# ------------------------------------------------------------------ token selections
class TokenSelection:
    """Which content tokens get noise: :meth:`choose`; ``needs_gradient`` when it reads the clean pass's gradient."""

    name: str = ""
    needs_gradient: bool = False

    def choose(self, noise: "SimilarWordNoise", batch: Batch, clean: ClassifierOutput,
               labels: Optional[Tensor]) -> Tensor:
        """``(B, T)`` bool, a subset of ``batch.content_mask``."""
        raise NotImplementedError


class AllTokens(TokenSelection):
    name = "all"

    def choose(self, noise, batch, clean, labels):
        return batch.content_mask


class RandomTokens(TokenSelection):
    """``fraction`` of the content tokens, chosen at random (2-1)."""

    name = "random"

    def choose(self, noise, batch, clean, labels):
        mask = batch.content_mask
        return select_tokens(torch.rand(mask.shape, device=mask.device), mask, noise.fraction)


class SaliencyTokens(TokenSelection):
    """``fraction`` of the content tokens of highest (``high``) or lowest saliency ``sum_e |dCE/dE|`` (2-2 / 2-3)."""

    needs_gradient = True

    def __init__(self, name: str, high: bool) -> None:
        self.name, self.high = name, high

    def choose(self, noise, batch, clean, labels):
        if labels is None:
            raise ValueError(f"{noise.name}: saliency selection needs labels (the clean step-1 loss)")
        ce = F.cross_entropy(clean.logits, labels, reduction="sum")
        (grad,) = torch.autograd.grad(ce, clean.embeddings, retain_graph=True)
        scores = grad.abs().sum(-1)  # (B, T) saliency
        return select_tokens(scores if self.high else -scores, batch.content_mask, noise.fraction)


# ------------------------------------------------------------------ registries and recipes
#: candidate sources by name (:func:`register_candidate_source`)
CANDIDATE_SOURCES: dict[str, CandidateSource] = {}
#: token selections by name (:func:`register_token_selection`)
TOKEN_SELECTIONS: dict[str, TokenSelection] = {}


@dataclass(frozen=True)
class NoiseRecipe:
    """A named noise variant (the ``regularizer:`` value): a candidate source x a token selection."""

    name: str
    source: CandidateSource
    selection: TokenSelection


#: the named variants (:func:`register_noise_recipe`)
NOISE_RECIPES: dict[str, NoiseRecipe] = {}


def _register(registry: dict, item, what: str):
    if not item.name or item.name in registry:
        raise ValueError(f"{what} {item.name!r} is empty or already registered")
    registry[item.name] = item
    return item


def register_candidate_source(source: CandidateSource) -> CandidateSource:
    return _register(CANDIDATE_SOURCES, source, "candidate source")


def register_token_selection(selection: TokenSelection) -> TokenSelection:
    return _register(TOKEN_SELECTIONS, selection, "token selection")


def register_noise_recipe(name: str, source: str, selection: str) -> NoiseRecipe:
    """Register variant ``name`` from a registered candidate source and token selection (by name)."""
    if source not in CANDIDATE_SOURCES or selection not in TOKEN_SELECTIONS:
        raise ValueError(f"noise recipe {name!r}: unknown source {source!r} or selection {selection!r}")
    return _register(NOISE_RECIPES, NoiseRecipe(name, CANDIDATE_SOURCES[source], TOKEN_SELECTIONS[selection]),
                     "noise recipe")


for _source in (NearestNeighbour(), RandomTopK(), WordNetSynonym()):
    register_candidate_source(_source)
for _selection in (AllTokens(), RandomTokens(), SaliencyTokens("saliency_high", True),
                   SaliencyTokens("saliency_low", False)):
    register_token_selection(_selection)
for _name, _source_name, _selection_name in (
    ("similar_1_1", "nearest", "all"), ("similar_1_2", "random_top_k", "all"), ("similar_2_1", "nearest", "random"),
    ("similar_2_2", "nearest", "saliency_high"), ("similar_2_3", "nearest", "saliency_low"),
    ("wordnet", "wordnet", "all"),
):
    register_noise_recipe(_name, _source_name, _selection_name)

#: the built-in variant names (:data:`NOISE_RECIPES` also holds later registrations)
NOISE_VARIANTS = tuple(NOISE_RECIPES)
#: the built-in token selection names (the ``token_selection`` override)
SELECTIONS = tuple(TOKEN_SELECTIONS)
#: the noise rows of the paper's Tables 2/3: row name -> (recipe, noise_size)
PAPER_ROWS = {
    "1-1": ("similar_1_1", 0.5), "1-2": ("similar_1_2", 0.5), "2-1": ("similar_2_1", 0.5),
    "2-2": ("similar_2_2", 0.5), "2-3": ("similar_2_3", 0.5), "WordNet_1.0": ("wordnet", 1.0),
    "1-1_1.0": ("similar_1_1", 1.0), "WordNet_0.5": ("wordnet", 0.5),
}


class DeviceStatsLoss:
    """The host side of a regulariser whose ``loss_with_device_stats(model, batch, clean, labels)`` returns
    the per-example loss ``(B,)`` and its statistics as device tensors: :meth:`loss_with_stats` reads the
    statistics back in one host sync, and calling the regulariser gives the loss alone (no sync)."""

    def loss_with_stats(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> tuple[Tensor, dict[str, float]]:
        """Per-example loss ``(B,)`` and the statistics as floats (one host sync)."""
        per, stats = self.loss_with_device_stats(model, batch, clean, labels)  # type: ignore[attr-defined]
        return per, to_host(stats)

    def __call__(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor:
        return self.loss_with_stats(model, batch, clean, labels)[0]


@dataclass(frozen=True, eq=False)
class SimilarWordNoise(DeviceStatsLoss):
    """One member of the similar-word noise family (see module docstring).

    Attributes:
        name: variant, a :data:`NOISE_RECIPES` name.
        candidates: ``(V, K)`` long replacement candidates per vocabulary id, most
            similar first; ``-1`` pads rows with fewer candidates (the table ``source.table`` names).
        noise_size: interpolation weight in ``[0, 1]`` (paper: 0.5; 1.0 = replace).
        top_k: ``random_top_k`` draws among the first ``top_k`` columns (paper 1-2: 10).
        fraction: share of content tokens changed by the partial selections (paper: 0.15).
        source: a :class:`CandidateSource` or its :data:`CANDIDATE_SOURCES` name (default: the recipe's).
        selection: a :class:`TokenSelection` or its :data:`TOKEN_SELECTIONS` name (default: the recipe's).
    """

    name: str
    candidates: Tensor = field(repr=False)
    noise_size: float = 0.5
    top_k: int = 10
    fraction: float = 0.15
    source: Union[None, str, CandidateSource] = None
    selection: Union[None, str, TokenSelection] = None
    uses_unlabeled: bool = False

    def __post_init__(self) -> None:
        if self.name not in NOISE_RECIPES:
            raise ValueError(f"unknown noise variant {self.name!r}; choose one of {', '.join(NOISE_RECIPES)}")
        recipe = NOISE_RECIPES[self.name]
        for attr, registry, default in (("source", CANDIDATE_SOURCES, recipe.source),
                                        ("selection", TOKEN_SELECTIONS, recipe.selection)):
            value = getattr(self, attr)
            if value is None:
                value = default
            elif isinstance(value, str):
                if value not in registry:
                    raise ValueError(f"{attr} must be one of {tuple(registry)}, got {value!r}")
                value = registry[value]
            object.__setattr__(self, attr, value)
        if not 0.0 <= self.noise_size <= 1.0:
            raise ValueError(f"noise_size must be in [0, 1], got {self.noise_size}")
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.candidates.dim() != 2 or self.candidates.dtype != torch.long:
            raise ValueError("candidates must be a (V, K) long tensor")

    # ------------------------------------------------------------ pieces
    def replacements(self, input_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Replacement id per position and whether one exists: ``(B, T)`` long, ``(B, T)`` bool."""
        cand = self.candidates.to(input_ids.device)[input_ids]  # (B, T, K)
        choice = self.source.choose(cand, cand >= 0, self.top_k)
        rep = cand.gather(-1, choice.unsqueeze(-1)).squeeze(-1)  # (B, T)
        has = rep >= 0
        return torch.where(has, rep, input_ids), has & (rep != input_ids)

    def chosen_positions(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor]
    ) -> Tensor:
        """``(B, T)`` bool: the content positions this variant puts noise on."""
        return self.selection.choose(self, batch, clean, labels)

    def noised(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> tuple[Tensor, Tensor]:
        """The noisy word embeddings ``(B, T, E)`` (graph to ``E`` kept) and the changed mask ``(B, T)``."""
        if clean.embeddings is None or not isinstance(model, TextClassifier):
            raise ValueError(f"{self.name} needs a model with an `embed` lookup that returns its word embeddings")
        emb = to_exact(clean.embeddings)  # (B, T, E)
        rep, has = self.replacements(batch.input_ids)
        changed = has & self.chosen_positions(model, batch, clean, labels)
        with torch.no_grad():
            target = to_exact(model.embed(rep))  # (B, T, E) current rows of the replacements
        with exact(emb):  # the noise difference in fp32 also under autocast
            w = (self.noise_size * changed.to(emb.dtype)).unsqueeze(-1)  # (B, T, 1)
            new = torch.lerp(emb.detach(), target, w) + (emb - emb.detach())  # value exact, gradient to E
        return new, changed

    def perturbation(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> Tensor:
        """The additive noise ``E_new - E`` ``(B, T, E)``, detached (0 on special tokens and padding)."""
        new, _ = self.noised(model, batch, clean, labels)
        with exact(new):
            return (new - to_exact(clean.embeddings)).detach()

    # ------------------------------------------------------------- loss
    def _stats(self, batch: Batch, emb: Tensor, new: Tensor, changed: Tensor) -> dict[str, Tensor]:
        # 0-d device tensors: the training loop reads them once per logging interval (no sync here)
        with torch.no_grad(), exact(new):
            emb = to_exact(emb)
            content = batch.content_mask.unsqueeze(-1)
            noise = (new - emb) * content
            ratio = noise.flatten(1).norm(dim=1) / (emb * content).flatten(1).norm(dim=1).clamp_min(1e-12)
            n_content = batch.content_mask.sum().clamp_min(1).double()
            return {"noise_ratio": ratio.mean(), "frac_changed": changed.sum().double() / n_content}

    def fused_loss(self, model: nn.Module, batch: Batch) -> Optional[tuple[ClassifierOutput, Tensor, dict[str, Tensor]]]:
        """The clean and the noisy pass as *one* forward of ``2B`` rows (the training loop's fast path).

        Same loss as the clean pass followed by :meth:`loss_with_stats` (dropout masks are drawn
        independently per row either way); one batched pass is about 5% cheaper on CPU than two.
        ``None`` (use the two-pass path) when the token choice needs the clean pass's gradient
        (saliency variants) or ``noise_size`` is 0.

        Returns:
            ``(clean output, per-example symKL (B,), statistics as 0-d device tensors)``.
        """
        if self.selection.needs_gradient or self.noise_size == 0 or not isinstance(model, TextClassifier):
            return None
        emb = to_exact(model.embed(batch.input_ids))  # (B, T, E)
        stub = ClassifierOutput(logits=emb.new_zeros(batch.size, 0), embeddings=emb)
        new, changed = self.noised(model, batch, stub, batch.labels)
        kwargs = {}
        if batch.token_type_ids is not None:
            kwargs["token_type_ids"] = torch.cat([batch.token_type_ids, batch.token_type_ids])
        out = model(torch.cat([batch.input_ids, batch.input_ids]), torch.cat([batch.attention_mask, batch.attention_mask]),
                    inputs_embeds=torch.cat([emb, new]), **kwargs)
        B = batch.size
        clean = ClassifierOutput(logits=out.logits[:B], embeddings=emb)
        return clean, symmetric_kl(out.logits[:B], out.logits[B:]), self._stats(batch, emb, new, changed)

    def loss_with_device_stats(
        self, model: nn.Module, batch: Batch, clean: ClassifierOutput, labels: Optional[Tensor] = None
    ) -> tuple[Tensor, dict[str, Any]]:
        """Per-example ``symKL`` ``(B,)`` and ``{"noise_ratio", "frac_changed"}`` (0-d device tensors; no host sync)."""
        if self.noise_size == 0:
            zero = clean.logits.new_zeros(clean.logits.shape[0])
            return zero, {"noise_ratio": 0.0, "frac_changed": 0.0}
        new, changed = self.noised(model, batch, clean, labels)
        noisy = forward_batch(model, batch, inputs_embeds=new)
        stats = self._stats(batch, clean.embeddings, new, changed)
        return symmetric_kl(clean.logits, noisy.logits), stats



def make_noise_regularizer(
    variant: str,
    candidates: Tensor,
    *,
    noise_size: float = 0.5,
    fraction: float = 0.15,
    top_k: int = 10,
    selection: Union[None, str, TokenSelection] = None,
    source: Union[None, str, CandidateSource] = None,
) -> SimilarWordNoise:
    """Build a variant by name; ``selection`` / ``source`` override the recipe's components (config keys)."""
    if variant not in NOISE_RECIPES:
        raise ValueError(f"unknown noise variant {variant!r}; choose one of {', '.join(NOISE_RECIPES)}")
    return SimilarWordNoise(
        name=variant, candidates=candidates, noise_size=float(noise_size), top_k=int(top_k),
        fraction=float(fraction), source=source, selection=selection,
    )
